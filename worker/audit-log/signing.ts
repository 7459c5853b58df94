/**
 * The audit key: ECDSA P-256 with SHA-256 (WebCrypto), signing checkpoints. The signature is the
 * raw 64-byte r‖s form WebCrypto produces, base64url, over the canonical JSON (canonical.ts) of the
 * checkpoint without its `signature` field. Web-standard APIs only (shared with the verifier).
 */
import { canonicalJson } from "./canonical.ts";

/** WebCrypto's key type, named so it resolves under both the Workers and the Node type definitions. */
export type Key = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;

export interface AuditKeys {
  privateKey: Key;
  publicKey: Key;
}

function pemBody(pem: string, label: string): Uint8Array<ArrayBuffer> {
  const match = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (!match) throw new Error(`not a PEM ${label}`);
  const bin = atob(match[1]!.replace(/\s+/g, ""));
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

function toPem(der: ArrayBuffer, label: string): string {
  const bytes = new Uint8Array(der);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  const b64 = btoa(bin).replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

export function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  const bin = atob(text.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (text.length % 4)) % 4));
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** The key pair from the PKCS#8 private key; the public half comes from its JWK (x, y). */
export async function importAuditKey(pkcs8Pem: string): Promise<AuditKeys> {
  const privateKey = await crypto.subtle.importKey("pkcs8", pemBody(pkcs8Pem, "PRIVATE KEY"), ALGORITHM, true, ["sign"]);
  const jwk = (await crypto.subtle.exportKey("jwk", privateKey)) as { x?: string; y?: string };
  const publicKey = await crypto.subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, ext: true }, ALGORITHM, true, [
    "verify",
  ]);
  return { privateKey, publicKey };
}

export async function importPublicKey(spkiPem: string): Promise<Key> {
  return crypto.subtle.importKey("spki", pemBody(spkiPem, "PUBLIC KEY"), ALGORITHM, true, ["verify"]);
}

export async function publicKeyPem(key: Key): Promise<string> {
  return toPem((await crypto.subtle.exportKey("spki", key)) as ArrayBuffer, "PUBLIC KEY");
}

/** A new key pair as PEM (PKCS#8 private, SPKI public): for the local stack and the tests. */
export async function generateAuditKeyPem(): Promise<{ privatePem: string; publicPem: string }> {
  const pair = (await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as { privateKey: Key; publicKey: Key };
  return {
    privatePem: toPem((await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer, "PRIVATE KEY"),
    publicPem: await publicKeyPem(pair.publicKey),
  };
}

/** SHA-256 of the public key's SPKI bytes (hex, first 16 chars): names the key in each checkpoint. */
export async function keyId(publicKey: Key): Promise<string> {
  const spki = (await crypto.subtle.exportKey("spki", publicKey)) as ArrayBuffer;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", spki));
  let s = "";
  for (const b of digest.slice(0, 8)) s += b.toString(16).padStart(2, "0");
  return s;
}

export async function signObject(key: Key, value: Record<string, unknown>): Promise<string> {
  const { signature: _s, ...rest } = value;
  const sig = await crypto.subtle.sign(SIGN, key, new TextEncoder().encode(canonicalJson(rest)));
  return base64url(new Uint8Array(sig));
}

export async function verifyObject(key: Key, value: Record<string, unknown>): Promise<boolean> {
  const { signature, ...rest } = value;
  if (typeof signature !== "string") return false;
  let sig: Uint8Array<ArrayBuffer>;
  try {
    sig = fromBase64url(signature);
  } catch {
    return false;
  }
  return crypto.subtle.verify(SIGN, key, sig, new TextEncoder().encode(canonicalJson(rest)));
}
