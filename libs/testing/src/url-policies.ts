import { UrlPolicy } from '@app/net';

/**
 * A UrlPolicy with private addresses refused, except that 127.0.0.1 counts as public: a loopback
 * server stands in for the internet while 127.0.0.2 (also loopback, served by the same sockets on
 * Linux) and every other private address stay refused.
 */
export class LoopbackAsPublicPolicy extends UrlPolicy {
  protected override addressProblem(address: string): string | undefined {
    return address === '127.0.0.1' ? undefined : super.addressProblem(address);
  }
}
