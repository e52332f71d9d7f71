/** Counters and gauges for GET /metrics, in Prometheus text format. Kept in memory: they describe
 *  this process; durable facts (queue depths, job states) are read from the index when scraped. */
export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly help = new Map<string, string>();

  inc(name: string, by = 1, labels?: Record<string, string>): void {
    const key = labels ? `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`).join(',')}}` : name;
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  describe(name: string, help: string): void {
    this.help.set(name, help);
  }

  get(name: string): number {
    return this.counters.get(name) ?? 0;
  }

  /** Renders counters plus gauges computed at scrape time. */
  render(gauges: { name: string; help: string; values: { labels?: Record<string, string>; value: number }[] }[]): string {
    const lines: string[] = [];
    const byName = new Map<string, string[]>();
    for (const [key, value] of this.counters) {
      const name = key.split('{')[0];
      if (!byName.has(name)) byName.set(name, []);
      byName.get(name)!.push(`${key} ${value}`);
    }
    for (const [name, rows] of byName) {
      lines.push(`# HELP ${name} ${this.help.get(name) ?? name}`, `# TYPE ${name} counter`, ...rows);
    }
    for (const g of gauges) {
      lines.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const v of g.values) {
        const labels = v.labels ? `{${Object.entries(v.labels).map(([k, val]) => `${k}="${val}"`).join(',')}}` : '';
        lines.push(`${g.name}${labels} ${v.value}`);
      }
    }
    return lines.join('\n') + '\n';
  }
}
