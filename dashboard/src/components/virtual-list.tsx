/**
 * A table that renders only the rows in view (plus a few above and below), with spacer rows for
 * the rest, so 10,000 hosts cost the DOM of about forty rows and stay a real <table> for screen
 * readers. Rows have a fixed height. Calls `onEndReached` near the bottom, for the next server page.
 */
import { type ReactNode, useEffect, useState } from "react";

const OVERSCAN = 8;

export function VirtualTable<T>(props: {
  items: readonly T[];
  rowHeight: number;
  height: number;
  columns: number;
  head: ReactNode;
  renderRow: (item: T, index: number) => ReactNode;
  onEndReached?: () => void;
  label: string;
}) {
  const { items, rowHeight, height, renderRow, onEndReached } = props;
  const [scrollTop, setScrollTop] = useState(0);
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - OVERSCAN);
  const last = Math.min(items.length, Math.ceil((scrollTop + height) / rowHeight) + OVERSCAN);

  useEffect(() => {
    if (onEndReached && last >= items.length - OVERSCAN) onEndReached();
  }, [last, items.length, onEndReached]);

  const rows: ReactNode[] = [];
  for (let i = first; i < last; i++) rows.push(renderRow(items[i]!, i));
  return (
    <div className="vlist" style={{ maxHeight: height, overflowY: "auto" }} onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}>
      <table className="table vtable" aria-label={props.label} aria-rowcount={items.length + 1}>
        <thead>{props.head}</thead>
        <tbody>
          {first > 0 && (
            <tr className="spacer" style={{ height: first * rowHeight }}>
              <td colSpan={props.columns} />
            </tr>
          )}
          {rows}
          {last < items.length && (
            <tr className="spacer" style={{ height: (items.length - last) * rowHeight }}>
              <td colSpan={props.columns} />
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
