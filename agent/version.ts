import { readFileSync } from "node:fs";

/** Set by scripts/build-agent.ts (esbuild `define`) in the single executable, which has no package.json beside it. */
declare const FLEET_AGENT_BUILD_VERSION: string | undefined;

/** The agent's version: the package's, so relay operators see which build each host runs. */
export const AGENT_VERSION: string = (() => {
  if (typeof FLEET_AGENT_BUILD_VERSION === "string") return FLEET_AGENT_BUILD_VERSION;
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" && pkg.version !== "" ? pkg.version.slice(0, 64) : "0.0.0";
  } catch {
    return "0.0.0";
  }
})();
