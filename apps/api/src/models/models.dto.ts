import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class ModelHolderDto {
  @ApiProperty() worker_id!: string;
  @ApiProperty({ enum: ['loading', 'ready', 'failed'] }) state!: 'loading' | 'ready' | 'failed';
  @ApiPropertyOptional({ example: 'wasm', description: 'tfjs backend it runs on' })
  backend?: string;
  @ApiPropertyOptional({ description: 'Bytes of weights in backend memory' }) bytes?: number;
  @ApiPropertyOptional({ description: 'Load time, ms' }) load_ms?: number;
  @ApiPropertyOptional({ description: 'Warm-up inference time, ms' }) warmup_ms?: number;
  @ApiPropertyOptional({ format: 'date-time' }) loaded_at?: string;
  @ApiPropertyOptional({ description: 'Inferences since it was loaded' }) inferences?: number;
  @ApiPropertyOptional({ description: 'Why the load failed' }) error?: string;
}

export class ModelVersionDto {
  @ApiProperty({ example: '1.0.0' }) version!: string;
  @ApiProperty({ enum: ['tfjs-layers', 'tfjs-graph', 'human'] }) format!: string;
  @ApiProperty({
    enum: ['models_dir', 'object_storage', 'bundled', 'package'],
    description: 'Where the workers found it (MODELS_DIR, the bucket, this repository, npm)',
  })
  source!: string;
  @ApiPropertyOptional() description?: string;
  @ApiPropertyOptional() license?: string;
  @ApiPropertyOptional({ description: 'Where the trained weights come from' }) origin?: string;
  @ApiProperty({ description: 'Input tensors: name, shape, dtype, value range' })
  inputs!: unknown[];
  @ApiProperty() outputs!: unknown[];
  @ApiPropertyOptional({ type: [Number] }) preferred_batch_sizes?: number[];
  @ApiPropertyOptional({ description: 'Backend memory per inference beyond the weights, bytes' })
  memory_bytes?: number;
  @ApiProperty({ type: [ModelHolderDto], description: 'Workers holding or loading this version' })
  workers!: ModelHolderDto[];
}

export class ModelDto {
  @ApiProperty({ example: 'esrgan-slim-x4' }) name!: string;
  @ApiProperty({ type: [ModelVersionDto], description: 'Newest first: the one tasks use' })
  versions!: ModelVersionDto[];
}

export class ModelsResponseDto {
  @ApiProperty({ type: [ModelDto] }) models!: ModelDto[];
  @ApiProperty({ type: [String], description: 'Live workers whose catalogs this lists' })
  workers!: string[];
}
