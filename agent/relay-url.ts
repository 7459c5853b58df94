import { ConfigError } from "./agent-options.ts";

/** The relay's agent endpoints, derived from its base URL (`https://host[:port][/prefix]`). */
export function relayEndpoints(relay: string): { enroll: string; renew: string; connect: string } {
  let base: URL;
  try {
    base = new URL(relay);
  } catch {
    throw new ConfigError(`relay URL is not a URL: ${relay}`);
  }
  // Agents only ever speak TLS: their identity is the client certificate.
  if (base.protocol !== "https:" && base.protocol !== "wss:") throw new ConfigError(`relay URL must be https://, got ${relay}`);
  const prefix = base.pathname.replace(/\/+$/, "");
  const at = (p: string, protocol: string) => {
    const u = new URL(base);
    u.protocol = protocol;
    u.pathname = `${prefix}${p}`;
    u.search = "";
    u.hash = "";
    return u.toString();
  };
  return { enroll: at("/agent/enroll", "https:"), renew: at("/agent/renew", "https:"), connect: at("/agent/connect", "wss:") };
}
