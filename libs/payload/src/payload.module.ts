import { Module } from '@nestjs/common';
import { DEFAULT_PAYLOAD_RESILIENCE, PAYLOAD_RESILIENCE, PayloadClient } from './payload.client';

/** The PayloadCMS client (PAYLOAD_*); disabled, not absent, without PAYLOAD_API_URL. */
@Module({
  providers: [{ provide: PAYLOAD_RESILIENCE, useValue: DEFAULT_PAYLOAD_RESILIENCE }, PayloadClient],
  exports: [PayloadClient],
})
export class PayloadModule {}
