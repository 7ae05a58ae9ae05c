// Self time of a node --cpu-prof profile by package and by function (text, for profile.ts).
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

export function cpuProfileTop(file: string, functions = 20): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  let total = 0;
  prof.samples.forEach((id, i) => {
    const us = prof.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const path = url.replace(/^file:\/\//, '');
    const pkg = /node_modules\/([^/]+)/.exec(path)?.[1] ?? (path.includes('/dist/') ? 'ddt' : path ? path.split('/').pop()! : `(${functionName || 'native'})`);
    const fn = `${functionName || '(anonymous)'} ${path.split('/').slice(-2).join('/')}:${lineNumber}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + us);
    total += us;
  });
  const top = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `${(us / 1e6).toFixed(2).padStart(6)} s ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`).join('\n');
  return `sampled ${(total / 1e6).toFixed(2)} s\n-- by package\n${top(byPkg, 10)}\n-- by function\n${top(byFn, functions)}`;
}
