import type { Env } from "../env.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import { type FleetCa, loadCa } from "./fleet-ca.ts";

let cached: { pem: string; ca: Promise<FleetCa> } | undefined;

/** The fleet CA from the Worker's secrets, imported once per isolate. */
export function fleetCa(env: Env): Promise<FleetCa> {
  if (!env.FLEET_CA_CERT || !env.FLEET_CA_KEY) {
    throw new RelayError(ErrorCode.MISCONFIGURED, "the fleet CA is not configured (FLEET_CA_CERT, FLEET_CA_KEY)");
  }
  if (cached?.pem !== env.FLEET_CA_CERT) {
    const ca = loadCa(env.FLEET_CA_CERT, env.FLEET_CA_KEY);
    cached = { pem: env.FLEET_CA_CERT, ca };
    ca.catch(() => (cached = undefined));
  }
  return cached.ca;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
