/**
 * The notebook's cell order, names and configs as this client knows them,
 * changed only by the server's `cells` broadcasts (docs/protocol.md, "Cells"),
 * plus builders for the ops the toolbar sends.
 */
import { CellOp, CellSnapshot } from './protocol';

export interface CellMeta {
  name: string;
  config: Record<string, unknown>;
}

/** What applying a broadcast did, for the widget to mirror in the DOM. */
export interface StructureDelta {
  created: { cellId: string; code: string }[];
  deleted: string[];
  /** Order, names or configs changed. */
  reordered: boolean;
}

export class NotebookStructure {
  constructor(version: number, cells: CellSnapshot[]) {
    this.version = version;
    this.order = cells.map(cell => cell.id);
    for (const cell of cells) {
      this.meta.set(cell.id, { name: cell.name, config: cell.config ?? {} });
    }
  }

  version: number;
  order: string[];
  readonly meta = new Map<string, CellMeta>();

  has(cellId: string): boolean {
    return this.meta.has(cellId);
  }

  indexOf(cellId: string): number {
    return this.order.indexOf(cellId);
  }

  /**
   * Apply a `cells` broadcast. Broadcasts arrive in the server's order; one
   * not newer than what we hold was already applied and is skipped.
   */
  apply(version: number, ops: CellOp[]): StructureDelta | null {
    if (version <= this.version) {
      return null;
    }
    const delta: StructureDelta = { created: [], deleted: [], reordered: false };
    for (const op of ops) {
      switch (op.op) {
        case 'create': {
          if (!op.cell_id) {
            break; // the server always names created cells in broadcasts
          }
          this.meta.set(op.cell_id, {
            name: op.name ?? '_',
            config: op.config ?? {}
          });
          this._insert(op.cell_id, op.after);
          delta.created.push({ cellId: op.cell_id, code: op.code ?? '' });
          break;
        }
        case 'delete':
          this.order = this.order.filter(id => id !== op.cell_id);
          this.meta.delete(op.cell_id);
          delta.deleted.push(op.cell_id);
          break;
        case 'move':
          this.order = this.order.filter(id => id !== op.cell_id);
          this._insert(op.cell_id, op.after);
          break;
        case 'rename': {
          const meta = this.meta.get(op.cell_id);
          if (meta) {
            meta.name = op.name;
          }
          break;
        }
        case 'config': {
          const meta = this.meta.get(op.cell_id);
          if (meta) {
            meta.config = op.config;
          }
          break;
        }
      }
      delta.reordered = true;
    }
    this.version = version;
    return delta;
  }

  /** The op that moves a cell one place up (-1) or down (1), or null at an end. */
  moveOp(cellId: string, direction: -1 | 1): CellOp | null {
    const index = this.indexOf(cellId);
    const target = index + direction;
    if (index < 0 || target < 0 || target >= this.order.length) {
      return null;
    }
    // "after" names the cell it should follow: for up, the one two places
    // above (or none: first); for down, the next one.
    const after =
      direction === -1 ? (this.order[index - 2] ?? null) : this.order[index + 1];
    return { op: 'move', cell_id: cellId, after };
  }

  private _insert(cellId: string, after: string | null | undefined): void {
    const index = after ? this.order.indexOf(after) + 1 : 0;
    this.order.splice(index, 0, cellId);
  }
}
