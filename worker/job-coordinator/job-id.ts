/**
 * The job id of a job request carrying this Idempotency-Key: a UUID (version 8, RFC 9562) made from
 * SHA-256 of the key, so every retry with the key names the same job and the same JobCoordinator,
 * whichever step of the first attempt failed. Keys are fleet-wide, not per caller.
 */
export async function jobIdForKey(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`fleet-relay/job-idempotency-key/${key}`)));
  const b = digest.slice(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
