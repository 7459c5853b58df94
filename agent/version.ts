import { readFileSync } from "node:fs";

/** The agent's version: the package's, so relay operators see which build each host runs. */
export const AGENT_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" && pkg.version !== "" ? pkg.version.slice(0, 64) : "0.0.0";
  } catch {
    return "0.0.0";
  }
})();
