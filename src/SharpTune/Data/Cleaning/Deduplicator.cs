using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace SharpTune.Data.Cleaning;

/// <summary>Settings of `sharptune data dedup`.</summary>
/// <param name="Fields">Top-level fields compared (null: all string values, see <see cref="RecordText"/>).</param>
/// <param name="Near">Also remove near duplicates (MinHash LSH) after exact ones.</param>
/// <param name="Threshold">Jaccard similarity of shingle sets from which records count as near duplicates (datasketch's and data-juicer's convention).</param>
/// <param name="NGram">Shingle length in <paramref name="Unit"/>s.</param>
/// <param name="Bands">LSH bands × rows; null: <see cref="LshBands.Optimal"/> for the threshold.</param>
public sealed record DedupOptions(
    IReadOnlyList<string>? Fields = null,
    bool Near = false,
    double Threshold = 0.8,
    int NGram = 5,
    ShingleUnit Unit = ShingleUnit.Character,
    int NumPerm = 128,
    LshBands? Bands = null);

/// <summary>
/// Removes duplicate records, keeping the first of each cluster in input order. Exact: records whose normalised text
/// (<see cref="RecordText.Normalize"/>) has the same SHA-256. Near: MinHash signatures of the shingles, LSH bands,
/// and union-find over every pair that shares a band, so clusters are transitive (A~B and B~C put C with A), as
/// data-juicer's MinHash deduplicator forms them; each removed record names its cluster's kept record.
/// The input is streamed (<see cref="DatasetRecordFile.ReadBatches{T}"/>): each batch's records are parsed,
/// normalised and hashed on all cores, then taken in input order against the index of the hashes seen, so memory
/// holds the index (and, for --near, the signatures), never the records; the kept records and the report are
/// written in a second streamed pass (<see cref="Deduplication"/>).
/// </summary>
public static class Deduplicator
{
    public const string ExactReason = "exact_duplicate";
    public const string NearReason = "near_duplicate";

    /// <summary>Finds the duplicates of <paramref name="inputPath"/>; nothing is written (see <see cref="Deduplication.Save"/>).</summary>
    public static Deduplication Run(string inputPath, DedupOptions options)
    {
        var fields = new RecordText(options.Fields);
        var minHash = options.Near ? new MinHash(options.NumPerm) : null;
        var bands = options.Near ? Bands(options) : default;
        DatasetRecordFile.CheckJsonInput(inputPath);
        string fieldsText = options.Fields is null ? "all string values" : string.Join("+", options.Fields);

        // For each record, the record it exactly duplicates (-1: none).
        var exactOf = new List<int>();
        var signatures = new List<uint[]?>();
        var firstWithKey = new Dictionary<UInt128, int>();
        foreach (var (records, prints) in DatasetRecordFile.ReadBatches(inputPath, value => Fingerprint.Of(fields.Of(value), minHash, options)))
            for (int i = 0; i < records.Count; i++)
            {
                bool first = firstWithKey.TryAdd(prints[i].Exact, records[i].Index);
                exactOf.Add(first ? -1 : firstWithKey[prints[i].Exact]);
                // Exact duplicates take no part in the near clusters.
                if (options.Near) signatures.Add(first ? prints[i].Signature : null);
            }
        if (options.Fields is not null && exactOf.Count > 0) fields.CheckFieldsFound(inputPath);

        string exactRule = $"same SHA-256 of the normalised text (NFKC, lower case, white space collapsed) of {fieldsText}";
        string unit = options.Unit == ShingleUnit.Character ? "character" : "word";
        string nearRule = $"MinHash LSH: {unit} {options.NGram}-grams, {options.NumPerm} permutations, {bands}, threshold {options.Threshold}; fields: {fieldsText}";
        var near = options.Near ? NearDuplicates([.. signatures], bands) : [];
        return new Deduplication(inputPath, [.. exactOf], exactRule, near, nearRule);
    }

    /// <summary>The exact-duplicate key of a record's compared text: the SHA-256 (first 128 bits) of its normalised text. `data inspect` counts duplicates by it too.</summary>
    public static UInt128 ExactKey(string normalizedText)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(MemoryMarshal.AsBytes(normalizedText.AsSpan()), digest);
        return BitConverter.ToUInt128(digest);
    }

    /// <summary>What deduplication keeps of a record: its <see cref="ExactKey"/> and, for --near, its MinHash signature.</summary>
    private readonly record struct Fingerprint(UInt128 Exact, uint[]? Signature)
    {
        public static Fingerprint Of(string text, MinHash? minHash, DedupOptions options)
        {
            string normalized = RecordText.Normalize(text);
            return new Fingerprint(ExactKey(normalized),
                minHash?.Signature(Shingles.Hashes(normalized, options.Unit, options.NGram)));
        }
    }

    /// <summary>The LSH bands to use, checked with the other near-dedup settings before any record is read.</summary>
    private static LshBands Bands(DedupOptions options)
    {
        if (options.NGram < 1) throw new ArgumentException($"--ngram must be at least 1, got {options.NGram}");
        var bands = options.Bands ?? LshBands.Optimal(options.Threshold, options.NumPerm);
        if (bands.Bands < 1 || bands.Rows < 1 || bands.Bands * bands.Rows > options.NumPerm)
            throw new ArgumentException($"--bands {bands.Bands} x --rows {bands.Rows} must be positive and use at most --num-perm {options.NumPerm} positions");
        return bands;
    }

    /// <summary>Each near-duplicate record's index, its cluster's kept record and their estimated Jaccard similarity.</summary>
    /// <param name="signatures">Each record's signature, null for an exact duplicate.</param>
    private static Dictionary<int, (int Kept, double Similarity)> NearDuplicates(uint[]?[] signatures, LshBands bands)
    {
        var clusters = new FirstIndexUnionFind(signatures.Length);
        for (int band = 0; band < bands.Bands; band++)
        {
            int from = band * bands.Rows;
            var firstInBucket = new Dictionary<BandKey, int>();
            for (int i = 0; i < signatures.Length; i++)
            {
                if (signatures[i] is not { } signature) continue;
                var key = new BandKey(signature.AsMemory(from, bands.Rows));
                if (!firstInBucket.TryAdd(key, i)) clusters.Union(firstInBucket[key], i);
            }
        }

        var near = new Dictionary<int, (int Kept, double Similarity)>();
        for (int i = 0; i < signatures.Length; i++)
        {
            if (signatures[i] is null) continue;
            int kept = clusters.Find(i);
            if (kept != i) near[i] = (kept, MinHash.EstimateJaccard(signatures[i], signatures[kept]));
        }
        return near;
    }

    /// <summary>One band of a signature as a dictionary key, compared by value.</summary>
    private readonly struct BandKey(ReadOnlyMemory<uint> rows) : IEquatable<BandKey>
    {
        private readonly ReadOnlyMemory<uint> rows = rows;

        public bool Equals(BandKey other) => rows.Span.SequenceEqual(other.rows.Span);

        public override bool Equals(object? obj) => obj is BandKey other && Equals(other);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.AddBytes(MemoryMarshal.AsBytes(rows.Span));
            return hash.ToHashCode();
        }
    }

    /// <summary>Union-find whose root is always the smallest index of its set: the record a cluster keeps.</summary>
    private sealed class FirstIndexUnionFind
    {
        private readonly int[] parent;

        public FirstIndexUnionFind(int count)
        {
            parent = new int[count];
            for (int i = 0; i < count; i++) parent[i] = i;
        }

        public int Find(int i)
        {
            while (parent[i] != i) i = parent[i] = parent[parent[i]];
            return i;
        }

        public void Union(int a, int b)
        {
            int rootA = Find(a), rootB = Find(b);
            if (rootA < rootB) parent[rootB] = rootA;
            else if (rootB < rootA) parent[rootA] = rootB;
        }
    }
}
