import type { Env } from "../env.ts";
import { EDGE_SECRET_HEADER, sameSecret } from "./agent-identity.ts";

/** Where requests that did not come through a trusted edge are counted, all together. */
export const UNTRUSTED_SOURCE = "untrusted";

/**
 * The caller's address as the edge saw it. On Cloudflare `CF-Connecting-IP` is set by the edge and
 * cannot be forged. Locally the relay's own port takes any header, so the address counts only on
 * requests carrying the local edge's secret (the edge sets it from the socket and drops a client's).
 */
export async function sourceAddress(request: Request, env: Env): Promise<string> {
  const fromEdge = !env.LOCAL_EDGE_SECRET || (await sameSecret(request.headers.get(EDGE_SECRET_HEADER), env.LOCAL_EDGE_SECRET));
  const address = request.headers.get("cf-connecting-ip");
  if (!fromEdge || !address) return UNTRUSTED_SOURCE;
  // Bounded and shaped like an address; anything else is one bucket too.
  return /^[0-9a-fA-F:.]{2,45}$/.test(address) ? address.toLowerCase() : UNTRUSTED_SOURCE;
}
