import { useEffect, useRef, useSyncExternalStore } from "react";
import { type ConnectionStatus, events, type FleetEvent } from "./event-stream";

export function useConnectionStatus(): ConnectionStatus {
  return useSyncExternalStore(
    (cb) => events.onStatus(cb),
    () => events.status,
  );
}

/** Changes on every `refetch`; put it in a loader's dependencies to reload after missed events. */
export function useRefetchGeneration(): number {
  return useSyncExternalStore(
    (cb) => events.onStatus(cb),
    () => events.refetchGeneration,
  );
}

/** Calls `handler` (always the latest one) for each live event. */
export function useFleetEvents(handler: (event: FleetEvent) => void): void {
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => events.onEvent((e) => ref.current(e)), []);
}
