import https from "node:https";
import { MIN_TLS_VERSION } from "./tls-trust.ts";

export interface TlsClientOptions {
  /** Trust anchors (PEM); undefined = Node's defaults. */
  ca?: string[];
  /** Client certificate and key for mutual TLS (renewal). */
  cert?: string;
  key?: string;
}

export interface JsonReply {
  status: number;
  /** Parsed body, or null when it was not JSON. */
  body: unknown;
  text: string;
}

/** Largest reply body read, bytes (a certificate chain is a few KiB). */
const MAX_REPLY_BYTES = 1024 * 1024;

/** POSTs JSON over TLS 1.3 and returns the status and parsed body, whatever the status. */
export function postJson(url: string, payload: unknown, tls: TlsClientOptions, timeoutMs = 30_000): Promise<JsonReply> {
  const body = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: "POST",
        ...tls,
        minVersion: MIN_TLS_VERSION,
        timeout: timeoutMs,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), accept: "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) req.destroy(new Error(`reply from ${url} exceeds ${MAX_REPLY_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = null;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON; callers report the status and text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no reply from ${url} within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** `code` and `detail` of an RFC 9457 problem body, when it is one. */
export function problemOf(body: unknown): { code: string | null; detail: string | null; title: string | null } {
  const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  return { code: str(b.code), detail: str(b.detail), title: str(b.title) };
}
