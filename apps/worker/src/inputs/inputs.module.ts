import { Module } from '@nestjs/common';
import { NetModule } from '@app/net';
import { StorageModule } from '@app/storage';
import { InputFetcher } from './input-fetcher';

/**
 * The fetcher of task inputs (http(s) through the UrlPolicy, `s3://` from our own storage), with
 * image headers probed by sharp. Worker-only: the API never fetches or decodes inputs.
 */
@Module({
  imports: [NetModule, StorageModule],
  providers: [InputFetcher],
  exports: [InputFetcher],
})
export class InputsModule {}
