// Processes seen through /proc, for the tests that must leave no tool running and no zombie behind.
import { readdirSync, readFileSync } from 'node:fs';

export interface Proc {
  pid: number;
  ppid: number;
  state: string;
}

export function readStat(pid: number): Proc | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid, state: f[0], ppid: Number(f[1]) };
  } catch {
    return null;
  }
}

/** Running (not zombie) processes whose command line or environment contains `marker`. */
export function processesWithMarker(marker: string): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    let text = '';
    for (const part of ['cmdline', 'environ']) {
      try {
        text += readFileSync(`/proc/${pid}/${part}`, 'latin1');
      } catch {
        // gone, or not ours to read
      }
    }
    const stat = readStat(pid);
    if (stat && text.includes(marker) && stat.state !== 'Z') out.push(stat);
  }
  return out;
}

export function zombiesOfOurs(): Proc[] {
  return readdirSync('/proc')
    .map(Number)
    .filter(Number.isInteger)
    .map(readStat)
    .filter((p): p is Proc => p !== null && p.ppid === process.pid && p.state === 'Z');
}

