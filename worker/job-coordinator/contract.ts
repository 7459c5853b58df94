/** The JobCoordinator's RPC types, for callers that must not import its implementation. */
export type { JobHostUpdate } from "./updates.ts";
export { jobIdForKey } from "./job-id.ts";
