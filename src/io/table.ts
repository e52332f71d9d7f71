/** A table of results (DVH metrics, radiomics features): column names and rows of cells. */
export type Cell = string | number | boolean | null | undefined;

export interface Table {
  columns: string[];
  rows: Cell[][];
}

/** Rows as objects (keys = columns) into a table; missing keys are empty cells. */
export function tableFromRecords(columns: string[], records: readonly Record<string, Cell>[]): Table {
  return { columns, rows: records.map((r) => columns.map((c) => r[c])) };
}
