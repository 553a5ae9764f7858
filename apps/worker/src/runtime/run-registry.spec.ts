import { RunRegistry, type ActiveRun } from './run-registry';

function run(runId: string, taskId: string, jobId = taskId): ActiveRun {
  return {
    runId,
    taskId,
    jobId,
    projectId: 'p',
    controller: new AbortController(),
    finished: Promise.resolve(),
    finishing: false,
  };
}

describe('RunRegistry', () => {
  it('keeps two runs of one task apart; each removes only its own entry', () => {
    const runs = new RunRegistry();
    const old = run('t#1', 't');
    const next = run('t#2', 't');
    runs.add(old);
    runs.add(next);
    expect(runs.byTask('t')).toEqual([old, next]);
    runs.delete('t#1');
    expect(runs.byTask('t')).toEqual([next]);
    expect(runs.taskIds()).toEqual(['t']);
  });

  it('aborts only runs still going and counts them', () => {
    const runs = new RunRegistry();
    const a = run('a#1', 'a');
    const b = run('b#1', 'b', 'a');
    b.controller.abort(new Error('earlier'));
    runs.add(a);
    runs.add(b);
    expect(runs.abort(runs.byJob('a'), new Error('now'))).toBe(1);
    expect((a.controller.signal.reason as Error).message).toBe('now');
    expect((b.controller.signal.reason as Error).message).toBe('earlier');
  });

  it('a finishing run is not among those a lost lock stops', () => {
    const runs = new RunRegistry();
    const a = run('a#1', 'a');
    runs.add(a);
    expect(runs.computingByJob('a')).toEqual([a]);
    a.finishing = true;
    expect(runs.computingByJob('a')).toEqual([]);
  });

  it('counts BullMQ calls in flight per job', () => {
    const runs = new RunRegistry();
    runs.callStarted('j');
    runs.callStarted('j');
    expect(runs.callsInFlight('j')).toBe(2);
    runs.callEnded('j');
    runs.callEnded('j');
    expect(runs.callsInFlight('j')).toBe(0);
    runs.callEnded('j');
    expect(runs.callsInFlight('j')).toBe(0);
  });

  it('remembers a bounded number of lost runs', () => {
    const runs = new RunRegistry();
    for (let i = 0; i < 300; i++) runs.markLost(`r${i}`);
    runs.markLost('r299');
    expect(runs.lostRunIds()).toHaveLength(256);
    expect(runs.lostRunIds()).toContain('r299');
    expect(runs.lostRunIds()).not.toContain('r0');
  });
});
