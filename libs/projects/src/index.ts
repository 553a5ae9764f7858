export * from './media-kind';
export * from './project-id';
export * from './project-storage';
export * from './project.repository';
export * from './projects.module';
export * from './s3-reference';
