export * from './address-policy';
export * from './net.module';
export * from './url-policy';
