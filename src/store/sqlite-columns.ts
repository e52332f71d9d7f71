import type Database from 'better-sqlite3';

/** Adds the columns a table lacks (an index written by an older version); reads its columns once. */
export function addColumns(db: Database.Database, table: string, columns: Record<string, string>): void {
  const have = new Set((db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name));
  for (const [name, type] of Object.entries(columns)) if (!have.has(name)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${type}`);
}
