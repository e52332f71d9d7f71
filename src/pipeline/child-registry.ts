/**
 * The external tools (process-group leaders) our stages have running, kept in a small file so that
 * after a `kill -9` of the node the next start can kill what the dead node left behind: a hung
 * TotalSegmentator must not keep a GPU and 20 GB of RAM for ever. A pid is only killed when its
 * start time still matches, so a recycled pid of someone else's process is never touched.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readProcEntry } from '../system/proc.js';
import type { Logger } from '../log.js';

interface Entry {
  pid: number;
  startTime: string;
}

/** Start time of a process (clock ticks since boot), or undefined if it is gone. */
export function processStartTime(pid: number): string | undefined {
  return readProcEntry(pid)?.start;
}

export class ChildRegistry {
  private readonly entries = new Map<number, Entry>();

  constructor(private readonly file: string) {}

  add(pid: number): void {
    const startTime = processStartTime(pid);
    if (startTime === undefined) return; // already gone
    this.entries.set(pid, { pid, startTime });
    this.save();
  }

  remove(pid: number): void {
    if (this.entries.delete(pid)) this.save();
  }

  // No fsync: the file only has to survive the death of this process, not of the machine (a power
  // cut takes the children with it).
  private save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.entries.values()]));
    renameSync(tmp, this.file);
  }

  /** At start: kill the process groups a previous, killed node left running; returns how many. */
  killLeftovers(log: Logger): number {
    let list: Entry[] = [];
    try {
      list = JSON.parse(readFileSync(this.file, 'utf8')) as Entry[];
    } catch {
      // no file: nothing was running
    }
    let killed = 0;
    for (const e of list) {
      if (processStartTime(e.pid) !== e.startTime) continue;
      for (const target of [-e.pid, e.pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      killed++;
      log.warn({ pid: e.pid }, 'killed an external tool left running by the previous node process');
    }
    this.entries.clear();
    this.save();
    return killed;
  }
}
