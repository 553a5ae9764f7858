import { Global, Module } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { SigningKeys } from '@app/redis';

/** A fixed salt: specs that build drivers or signers by hand need no Redis for their keys. */
export const TEST_SIGNING_SALT = '5a'.repeat(32);

/** The keys a deployment with this config and TEST_SIGNING_SALT would use. */
export function testSigningKeys(config: AppConfig): SigningKeys {
  return SigningKeys.withSalt(config, TEST_SIGNING_SALT);
}

/** SigningKeys for a module booted without RedisModule (a processor's module alone). */
@Global()
@Module({
  providers: [{ provide: SigningKeys, inject: [AppConfig], useFactory: testSigningKeys }],
  exports: [SigningKeys],
})
export class TestSigningKeysModule {}
