/**
 * A time-series line chart drawn by uPlot on a canvas. uPlot (and its stylesheet) is loaded on
 * first use, as its own chunk, so pages without charts do not pay for it. The chart is rebuilt
 * only when its series change; new points go through setData. `data-points` counts the non-null
 * values drawn and `data-sum` adds them up, so a test (or a person with devtools) can tell an
 * empty chart from a drawn one, and see it move.
 */
import { useEffect, useRef, useState } from "react";
import type uPlot from "uplot";

export interface ChartSeries {
  label: string;
  color: string;
  values: (number | null)[];
  /** Always draw point markers: for sparse series, where a lone minute with data has no line to show it. */
  points?: boolean;
}

type UPlotCtor = typeof uPlot;
let loading: Promise<UPlotCtor> | undefined;
function loadUPlot(): Promise<UPlotCtor> {
  loading ??= Promise.all([import("uplot"), import("uplot/dist/uPlot.min.css")]).then(([m]) => m.default);
  return loading;
}

const HEIGHT = 200;

export function TimeChart({
  label,
  times,
  series,
  unit,
}: {
  label: string;
  /** Unix seconds, one per point. */
  times: number[];
  series: ChartSeries[];
  unit?: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const [error, setError] = useState<string | null>(null);
  const shape = series.map((s) => `${s.label}:${s.color}:${s.points ? 1 : 0}`).join("|");
  const data = [times, ...series.map((s) => s.values)] as uPlot.AlignedData;
  const latest = useRef(data);
  latest.current = data;

  // biome-ignore lint/correctness/useExhaustiveDependencies: rebuilt when the series (shape) change; data flows through setData below
  useEffect(() => {
    let cancelled = false;
    let observer: ResizeObserver | undefined;
    loadUPlot().then(
      (UPlot) => {
        const el = host.current;
        if (cancelled || !el) return;
        const opts: uPlot.Options = {
          width: Math.max(200, el.clientWidth),
          height: HEIGHT,
          series: [
            {},
            ...series.map((s) => ({
              label: s.label,
              stroke: s.color,
              width: 2,
              spanGaps: false,
              ...(s.points ? { points: { show: true, size: 6, fill: s.color } } : {}),
            })),
          ],
          axes: [{}, { values: (_u, ticks) => ticks.map((t) => (unit ? `${fmt(t)} ${unit}` : fmt(t))), size: unit ? 70 : 50 }],
          scales: { x: { time: true } },
          legend: { show: true },
        };
        chart.current = new UPlot(opts, latest.current, el);
        observer = new ResizeObserver(() => chart.current?.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT }));
        observer.observe(el);
      },
      (err) => setError(`charts could not load: ${(err as Error).message}`),
    );
    return () => {
      cancelled = true;
      observer?.disconnect();
      chart.current?.destroy();
      chart.current = null;
    };
  }, [shape, unit]);

  useEffect(() => {
    chart.current?.setData(data);
  });

  let points = 0;
  let sum = 0;
  for (const s of series)
    for (const v of s.values) {
      if (v === null) continue;
      points++;
      sum += v;
    }
  return (
    <figure className="chart" aria-label={label} data-points={points} data-sum={sum}>
      <div ref={host} className="chart-canvas" />
      {error && <p className="error">{error}</p>}
    </figure>
  );
}

function fmt(v: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return v < 0.01 ? v.toExponential(0) : v.toPrecision(2);
}
