using System.Runtime.CompilerServices;

// The tokenizer tests check the regex translation and byte-level alphabet directly, not only through Encode.
[assembly: InternalsVisibleTo("SharpTune.Tests")]
