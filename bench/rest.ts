/** A keep-alive REST client for the relay (node:http, Nagle off), timed with performance.now(). */
import http from "node:http";

export interface Reply {
  status: number;
  body: string;
}

export class RestClient {
  readonly #base: URL;
  readonly #agent: http.Agent;
  readonly #token: string;

  constructor(baseUrl: string, token: string, maxSockets = 64) {
    this.#base = new URL(baseUrl);
    this.#token = token;
    // keepAlive: one TCP connection per in-flight caller, reused; noDelay set again on every socket below.
    this.#agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, noDelay: true } as http.AgentOptions);
  }

  request(method: string, path: string, body?: unknown, token = this.#token, extraHeaders: Record<string, string> = {}): Promise<Reply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.#base.hostname,
          port: this.#base.port,
          method,
          path,
          agent: this.#agent,
          headers: {
            authorization: `Bearer ${token}`,
            ...extraHeaders,
            ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", reject);
        },
      );
      req.on("socket", (s) => s.setNoDelay(true));
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  async json<T>(method: string, path: string, body: unknown, expect: number, token?: string): Promise<T> {
    const reply = await this.request(method, path, body, token);
    if (reply.status !== expect)
      throw new Error(`${method} ${path}: HTTP ${reply.status} (expected ${expect}): ${reply.body.slice(0, 500)}`);
    return JSON.parse(reply.body) as T;
  }

  close(): void {
    this.#agent.destroy();
  }
}
