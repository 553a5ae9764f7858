import { AppConfig } from '@app/config';
import { AdminCredentials } from './admin-credentials';

const basic = (pair: string) => `Basic ${Buffer.from(pair).toString('base64')}`;

describe('AdminCredentials', () => {
  it('accepts a configured API key and refuses others', () => {
    const creds = new AdminCredentials(AppConfig.fromEnv({ API_KEYS: 'one,two' }));
    expect(creds.check({ 'x-api-key': 'two' })).toBe('ok');
    expect(creds.check({ 'x-api-key': 'three' })).toBe('invalid');
    expect(creds.check({})).toBe('missing');
    // Without BULL_BOARD_BASIC_AUTH, basic credentials open nothing.
    expect(creds.check({ authorization: basic('admin:one') })).toBe('missing');
    expect(creds.basicAuthEnabled).toBe(false);
  });

  it('refuses keys limited to projects with forbidden (the board shows every project)', () => {
    const creds = new AdminCredentials(AppConfig.fromEnv({ API_KEYS: 'all,mine:p1|p2' }));
    expect(creds.check({ 'x-api-key': 'all' })).toBe('ok');
    expect(creds.check({ 'x-api-key': 'mine' })).toBe('forbidden');
    expect(creds.check({ 'x-api-key': 'mine:p1|p2' })).toBe('invalid');
  });

  it('accepts BULL_BOARD_BASIC_AUTH (password may hold colons) besides the API key', () => {
    const creds = new AdminCredentials(
      AppConfig.fromEnv({ API_KEYS: 'one', BULL_BOARD_BASIC_AUTH: 'ops:pa:ss' }),
    );
    expect(creds.basicAuthEnabled).toBe(true);
    expect(creds.check({ authorization: basic('ops:pa:ss') })).toBe('ok');
    expect(creds.check({ authorization: basic('ops:wrong') })).toBe('invalid');
    expect(creds.check({ authorization: 'Bearer x' })).toBe('missing');
    expect(creds.check({ 'x-api-key': 'one' })).toBe('ok');
  });
});
