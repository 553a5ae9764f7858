import { ReplyError } from 'ioredis';
import { isRedisUnavailableError } from './redis-errors';

describe('isRedisUnavailableError', () => {
  it.each([
    ['OOM command not allowed when used memory > maxmemory.'],
    ["READONLY You can't write against a read only replica."],
    ['LOADING Redis is loading the dataset in memory'],
    ['MASTERDOWN Link with MASTER is down'],
    ['CLUSTERDOWN The cluster is down'],
    ['TRYAGAIN Multiple keys request during rehashing of slot'],
  ])('a reply %s is Redis refusing', (message) => {
    expect(isRedisUnavailableError(new ReplyError(message))).toBe(true);
  });

  it('a script whose write was refused is Redis refusing', () => {
    const err = new ReplyError(
      "ERR Error running script (call to f_1): @user_script:9: @user_script: 9: -OOM command not allowed when used memory > 'maxmemory'.",
    );
    expect(isRedisUnavailableError(err)).toBe(true);
  });

  it.each([
    ['Connection is closed.'],
    ['Command timed out'],
    ["Stream isn't writeable and enableOfflineQueue options is false"],
  ])('%s is a connection problem', (message) => {
    expect(isRedisUnavailableError(new Error(message))).toBe(true);
  });

  it('a bare socket error (any peer: an input URL, Payload) is not taken for Redis', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), {
      code: 'ECONNREFUSED',
    });
    expect(isRedisUnavailableError(refused)).toBe(false);
  });

  it.each([
    [new ReplyError('ERR wrong number of arguments')],
    [new ReplyError('ILLEGAL cancelled')],
    [new ReplyError('NOSCRIPT No matching script')],
    [new Error('task cancelled')],
    ['OOM as a string'],
    [undefined],
  ])('%s is not', (err) => {
    expect(isRedisUnavailableError(err)).toBe(false);
  });
});
