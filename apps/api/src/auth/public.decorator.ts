import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'auth:public';
export const UNSCOPED_ONLY = 'auth:unscoped-only';

/** Routes that need no API key (health probes; media URLs carry their own signature). */
export const Public = () => SetMetadata(IS_PUBLIC, true);

/**
 * Routes that show data of every project (workers, queues): a key limited to some projects gets
 * 403 there, since answering would tell it about the others.
 */
export const UnscopedKeyOnly = () => SetMetadata(UNSCOPED_ONLY, true);
