import { countWorkers, workerConnectionName } from './queue-sampler';

describe('counting workers from CLIENT LIST', () => {
  it('counts BullMQ worker connections per lane, named or not, and nothing else', () => {
    const a = workerConnectionName('bp', 'tool_call');
    expect(a).toBe('bp:{tool_call}:dG9vbF9jYWxs'); // the lane's BullMQ prefix, then the base64 queue name
    const list = [
      `id=1 addr=x fd=8 name=${a} age=1 cmd=bzpopmin`,
      `id=2 addr=x fd=9 name=${a}:w:worker-1 age=1 cmd=bzpopmin`,
      `id=3 addr=x fd=9 name=${workerConnectionName('other', 'tool_call')} age=1`,
      `id=4 addr=x fd=9 name=${a}:qe age=1`,
      `id=5 addr=x fd=9 name= age=1`,
      `id=6 addr=x fd=9 name=${workerConnectionName('bp', 'critic')}:w:w2 age=1`,
    ].join('\n');
    expect(countWorkers(list, 'bp', ['tool_call', 'critic', 'file_read'])).toEqual(
      new Map([
        ['tool_call', 2],
        ['critic', 1],
        ['file_read', 0],
      ]),
    );
  });
});
