/**
 * Why a receiver URL may not be used here, or null if it may: https:// always; plain http:// only
 * to a loopback address, and only on a relay started with ALERT_ALLOW_HTTP_LOOPBACK=1 (the local
 * one). A notification carries the fleet's state, so it never crosses a network in clear.
 */
export function receiverUrlProblem(url: string, allowHttpLoopback: boolean): string | null {
  const u = new URL(url);
  if (u.protocol === "https:") return null;
  if (u.protocol !== "http:") return "expected an https:// URL";
  if (!allowHttpLoopback) return "expected an https:// URL (plain http:// is allowed only to loopback on a local relay)";
  if (!isLoopback(u.hostname)) return "plain http:// is allowed only to a loopback address (127.0.0.0/8, [::1], localhost); use https://";
  return null;
}

function isLoopback(hostname: string): boolean {
  if (hostname === "localhost" || hostname === "[::1]") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}
