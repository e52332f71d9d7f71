/** Processes as Linux's /proc describes them (no dependencies: the daemon's main thread uses it). */
import { readFileSync } from 'node:fs';

export interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** Start time in clock ticks since boot: with the pid, identifies a process for its whole life. */
  start: string;
  state: string;
}

/** One process as /proc/<pid>/stat describes it (state, parents, session, start time), or null if gone. */
export function readProcEntry(pid: number): ProcEntry | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // The command name is in parentheses and may itself contain spaces and parentheses.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: f[0], ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]), start: f[19] };
}
