import { type DependencyList, type ReactNode, useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "../api/client";

export function Badge({ value }: { value: string }) {
  return <span className={`badge badge-${value}`}>{value.replace("_", " ")}</span>;
}

export function Time({ at }: { at: string | null | undefined }) {
  if (!at) return <span className="muted">—</span>;
  const d = new Date(at);
  return (
    <time dateTime={at} title={at}>
      {d.toLocaleString()}
    </time>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof ApiError ? `${error.code}: ${error.message}` : String((error as Error).message ?? error);
  return (
    <p className="error" role="alert">
      {text}
    </p>
  );
}

/** The API's message for a field, next to it. */
export function FieldError({ error, field, id }: { error: unknown; field: string; id?: string }) {
  const message = error instanceof ApiError ? error.field(field) : undefined;
  if (!message) return null;
  return (
    <span className="field-error" role="alert" id={id} data-field={field}>
      {message}
    </span>
  );
}

export function Section({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card" aria-label={title}>
      <header className="card-head">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/**
 * Loads on mount and whenever `deps` change. `set` lets live events patch what was loaded; an
 * event that arrives while a load is in flight may or may not be in its answer, so it makes the
 * resource load once more when that answer is in, instead of being dropped.
 */
export function useResource<T>(
  load: () => Promise<T>,
  deps: DependencyList,
): { data: T | undefined; error: unknown; loading: boolean; reload: () => void; set: (fn: (prev: T) => T) => void } {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const loading = useRef(true);
  const stale = useRef(false);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the caller's deps decide when to reload
  useEffect(() => {
    let live = true;
    loading.current = true;
    stale.current = false;
    setState((s) => ({ ...s, loading: true }));
    const settle = () => {
      loading.current = false;
      if (stale.current) setTick((t) => t + 1);
    };
    load().then(
      (data) => {
        if (!live) return;
        setState({ data, error: undefined, loading: false });
        settle();
      },
      (error) => {
        if (!live) return;
        setState((s) => ({ data: s.data, error, loading: false }));
        settle();
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const set = useCallback((fn: (prev: T) => T) => {
    if (loading.current) {
      stale.current = true;
      return;
    }
    setState((s) => (s.data === undefined ? s : { ...s, data: fn(s.data) }));
  }, []);
  return { ...state, reload, set };
}

/**
 * `fn` (always the latest one) at most once per `ms`, trailing: a burst of events (a rack going
 * offline raises an alert per host) becomes one reload, not one per event.
 */
export function useCoalesced(fn: () => void, ms: number): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const last = useRef(0);
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    if (timer.current !== undefined) return;
    timer.current = setTimeout(
      () => {
        timer.current = undefined;
        last.current = Date.now();
        ref.current();
      },
      Math.max(0, last.current + ms - Date.now()),
    );
  }, [ms]);
}
