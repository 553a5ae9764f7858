import { Global, Module } from '@nestjs/common';
import { UrlPolicy } from './url-policy';

/** The outbound URL gate (UrlPolicy), one per app: its dispatcher keeps the connection pool. */
@Global()
@Module({ providers: [UrlPolicy], exports: [UrlPolicy] })
export class NetModule {}
