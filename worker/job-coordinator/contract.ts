/** The JobCoordinator's RPC types, for callers that must not import its implementation. */

export { jobIdForKey } from "./job-id.ts";
export type { JobHostUpdate } from "./updates.ts";
