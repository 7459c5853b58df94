/**
 * How receivers know a notification came from this relay, unchanged and recently:
 *
 *   X-Fleet-Relay-Timestamp: <unix seconds when this attempt was sent>
 *   X-Fleet-Relay-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *
 * The timestamp is inside the MAC, so a captured request cannot be replayed later with a new
 * timestamp; a receiver rejects timestamps more than a few minutes from its clock (5 min here) and
 * compares in constant time. Each retry is signed afresh. X-Fleet-Relay-Delivery names the
 * (notification, receiver) pair, the same on every retry, for receivers that deduplicate.
 */
export const SIGNATURE_HEADER = "X-Fleet-Relay-Signature";
export const TIMESTAMP_HEADER = "X-Fleet-Relay-Timestamp";
export const DELIVERY_HEADER = "X-Fleet-Relay-Delivery";
export const DEFAULT_TOLERANCE_S = 300;

const encoder = new TextEncoder();

async function hmacHex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(message));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The X-Fleet-Relay-Signature value for `body` sent at `timestamp` (unix seconds, as a string). */
export async function signatureFor(secret: string, timestamp: string, body: string): Promise<string> {
  return `sha256=${await hmacHex(secret, `${timestamp}.${body}`)}`;
}

/** A receiver's check: the signature matches and the timestamp is within `toleranceS` of `nowS`. */
export async function verifySignature(
  secret: string,
  headers: { timestamp: string | null; signature: string | null },
  body: string,
  nowS: number,
  toleranceS = DEFAULT_TOLERANCE_S,
): Promise<boolean> {
  const { timestamp, signature } = headers;
  if (!timestamp || !signature || !/^[0-9]{1,12}$/.test(timestamp)) return false;
  if (Math.abs(nowS - Number(timestamp)) > toleranceS) return false;
  const expected = await signatureFor(secret, timestamp, body);
  if (expected.length !== signature.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ signature.charCodeAt(i);
  return diff === 0;
}
