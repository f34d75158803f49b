/**
 * Types for `snowball-stemmers` (ISC, JS port of the Snowball stemmers), which ships none.
 * Only the two calls the built-in analyzer uses are declared.
 */
declare module 'snowball-stemmers' {
  interface SnowballStemmer {
    stem(word: string): string;
  }
  interface SnowballFactory {
    newStemmer(algorithm: string): SnowballStemmer;
    algorithms(): string[];
  }
  const factory: SnowballFactory;
  export default factory;
}
