/**
 * The typed REST client: openapi-fetch over the generated paths. Every call carries the pasted
 * token as a Bearer header; behind Cloudflare Access there is none and Access's assertion header
 * (added by Access itself) authenticates the request.
 */
import createClient, { type Middleware } from "openapi-fetch";
import { getToken, signOut } from "../auth";
import type { paths } from "./schema";

export interface ProblemField {
  path: string;
  message: string;
}

/** An RFC 9457 problem document from the API, as an exception. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: ProblemField[];
  constructor(status: number, problem: { code?: string; detail?: string; title?: string; errors?: ProblemField[] } | undefined) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? `HTTP_${status}`;
    this.fields = problem?.errors ?? [];
  }
  /** The message for one request field (`packages.0`, `target.tags`…), if the API named it. */
  field(prefix: string): string | undefined {
    return this.fields.find((f) => f.path === prefix || f.path.startsWith(`${prefix}.`))?.message;
  }
}

const auth: Middleware = {
  onRequest({ request }) {
    const token = getToken();
    if (token) request.headers.set("authorization", `Bearer ${token}`);
    return request;
  },
  onResponse({ response }) {
    // An expired or revoked pasted token: back to the sign-in page rather than a screen of errors.
    if (response.status === 401 && getToken()) signOut("the token was refused (expired?)");
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: window.location.origin });
api.use(auth);

/** The data of a call, or its problem as an ApiError. */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) throw new ApiError(response.status, error as never);
  return data as T;
}
