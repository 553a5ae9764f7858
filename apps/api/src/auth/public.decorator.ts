import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'auth:public';

/** Routes that need no API key (health probes; media URLs carry their own signature). */
export const Public = () => SetMetadata(IS_PUBLIC, true);
