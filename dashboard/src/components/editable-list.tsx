/**
 * An admin's list of things to create, edit and delete (alert rules, receivers): the table, a
 * "New …" button, one form open at a time, and delete behind a second click. The page supplies
 * the columns, the form and the delete call; this holds the editing state and the reloads.
 */
import { type ReactNode, useState } from "react";
import { ErrorNote, Section, useResource } from "./ui";

export interface FormProps<T> {
  /** The item being edited, or null for a new one. */
  item: T | null;
  onDone: () => void;
  onCancel: () => void;
}

export function EditableList<T>(props: {
  title: string;
  /** "rule", "receiver": in the buttons and their accessible names. */
  noun: string;
  load: () => Promise<{ items: T[] }>;
  idOf: (item: T) => string;
  nameOf: (item: T) => string;
  /** Set on each row as `data-<rowAttribute>`, for tests and styling. */
  rowAttribute: string;
  head: ReactNode;
  cells: (item: T) => ReactNode;
  form: (props: FormProps<T>) => ReactNode;
  remove: (id: string) => Promise<unknown>;
  empty: string;
}) {
  const list = useResource(props.load, []);
  const [editing, setEditing] = useState<T | "new" | null>(null);
  const [confirmDelete, setConfirmDelete] = useState<string | null>(null);
  const [error, setError] = useState<unknown>();
  const { noun, idOf, nameOf } = props;

  const remove = async (id: string) => {
    setError(undefined);
    try {
      await props.remove(id);
      setConfirmDelete(null);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <Section
      title={props.title}
      actions={
        editing === null ? (
          <button type="button" onClick={() => setEditing("new")}>
            New {noun}
          </button>
        ) : null
      }
    >
      {editing !== null && (
        <props.form
          key={editing === "new" ? "new" : idOf(editing)}
          item={editing === "new" ? null : editing}
          onDone={() => {
            setEditing(null);
            list.reload();
          }}
          onCancel={() => setEditing(null)}
        />
      )}
      <ErrorNote error={list.error ?? error} />
      <table className="table" aria-label={props.title}>
        <thead>
          <tr>
            {props.head}
            <th />
          </tr>
        </thead>
        <tbody>
          {list.data?.items.map((item) => (
            <tr key={idOf(item)} {...{ [`data-${props.rowAttribute}`]: idOf(item) }}>
              {props.cells(item)}
              <td>
                <span className="actions">
                  <button type="button" onClick={() => setEditing(item)} aria-label={`Edit ${noun} ${nameOf(item)}`}>
                    Edit
                  </button>
                  {confirmDelete === idOf(item) ? (
                    <button type="button" className="danger" onClick={() => void remove(idOf(item))}>
                      Confirm delete
                    </button>
                  ) : (
                    <button type="button" onClick={() => setConfirmDelete(idOf(item))} aria-label={`Delete ${noun} ${nameOf(item)}`}>
                      Delete
                    </button>
                  )}
                </span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data?.items.length === 0 && <p className="muted">{props.empty}</p>}
    </Section>
  );
}
