/**
 * Who is signed in. A pasted token lives in sessionStorage (this tab only, gone when it closes);
 * behind Cloudflare Access there is no token in the page at all and `/api/whoami` answers from
 * Access's assertion. Roles only decide which controls are shown: the API enforces them anyway.
 */
import type { Caller } from "./api/types";

const KEY = "fleet-relay.token";
type Listener = () => void;
const listeners = new Set<Listener>();
let caller: Caller | null = null;
let signOutReason: string | null = null;

export function getToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function getCaller(): Caller | null {
  return caller;
}

export function lastSignOutReason(): string | null {
  return signOutReason;
}

export function onAuthChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(): void {
  for (const l of listeners) l();
}

/** Asks the relay who the credentials (a token, or none: Access) belong to. */
export async function whoami(token: string | null): Promise<Caller | { error: string; status: number }> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch("/api/whoami", { headers });
  if (res.ok) return (await res.json()) as Caller;
  const problem = (await res.json().catch(() => ({}))) as { detail?: string };
  return { error: problem.detail ?? `HTTP ${res.status}`, status: res.status };
}

export async function signIn(token: string | null): Promise<string | null> {
  const answer = await whoami(token);
  if ("error" in answer) return answer.error;
  if (token) sessionStorage.setItem(KEY, token);
  caller = answer;
  signOutReason = null;
  emit();
  return null;
}

export function signOut(reason: string | null = null): void {
  sessionStorage.removeItem(KEY);
  caller = null;
  signOutReason = reason;
  emit();
}
