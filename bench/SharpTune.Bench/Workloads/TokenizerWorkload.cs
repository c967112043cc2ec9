using System.Diagnostics;
using System.Text;
using System.Text.Json;
using SharpTune.Tokenization;

namespace SharpTune.Bench;

/// <summary>
/// Tokenizer throughput on LLaMA-Factory's alpaca_en_demo and alpaca_zh_demo (tests/fixtures/llamafactory), for the
/// Qwen2.5 tokenizer.json and, prefixed spm_bpe. and spm_unigram., the SentencePiece BPE and Unigram test models
/// (tests/fixtures/sentencepiece, nmt_nfkc normalization):
/// each record's instruction + "\n" + input + "\n" + output is one text, encoded and decoded on its own as a data
/// pipeline would. MB are UTF-8 megabytes (10⁶ bytes) of text. "cold" is the first pass of a freshly loaded
/// tokenizer (empty word cache; loading excluded), "warm" a later pass over the same data.
/// </summary>
public sealed class TokenizerWorkload : IWorkload
{
    private static readonly string[] s_datasets = ["alpaca_en_demo", "alpaca_zh_demo"];

    public string Name => "tokenizer";

    public string Description => "tokenizer encode (cold/warm) and decode MB/s on the LLaMA-Factory alpaca demo data";

    public int DefaultSeq => 0;

    public void Run(BenchContext context)
    {
        Measure(context, BenchModels.Fixtures("tokenizers", "qwen2.5-instruct"), "");
        string folder = Path.Combine(Path.GetTempPath(), "sharptune-bench-spm-" + Guid.NewGuid().ToString("N"));
        try
        {
            foreach (var (model, prefix) in new[] { ("bpe_bf.model", "spm_bpe."), ("uni.model", "spm_unigram.") })
            {
                // A SentencePiece folder holds its model as tokenizer.model and nothing else.
                Directory.CreateDirectory(folder);
                File.Copy(BenchModels.Fixtures("sentencepiece", model), Path.Combine(folder, "tokenizer.model"), overwrite: true);
                Measure(context, folder, prefix);
            }
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    private static void Measure(BenchContext context, string tokenizerDir, string prefix)
    {
        foreach (string dataset in s_datasets)
        {
            string[] texts = LoadTexts(BenchModels.Fixtures("llamafactory", dataset + ".json"));
            double megabytes = texts.Sum(t => (double)Encoding.UTF8.GetByteCount(t)) / 1e6;

            double cold = context.MedianSeconds(() =>
            {
                var fresh = Tokenizer.FromDirectory(tokenizerDir);
                long start = Stopwatch.GetTimestamp();
                EncodeAll(fresh, texts);
                return Stopwatch.GetElapsedTime(start).TotalSeconds;
            });

            var tokenizer = Tokenizer.FromDirectory(tokenizerDir);
            int[][] encoded = EncodeAll(tokenizer, texts);
            double warm = context.MedianSeconds(() => EncodeAll(tokenizer, texts));
            double decode = context.MedianSeconds(() =>
            {
                foreach (int[] ids in encoded) tokenizer.Decode(ids);
            });

            context.Report($"{prefix}{dataset}.text", megabytes, "MB");
            context.Report($"{prefix}{dataset}.tokens", encoded.Sum(ids => ids.Length), "tokens");
            context.Report($"{prefix}{dataset}.encode_cold", megabytes / cold, "MB/s");
            context.Report($"{prefix}{dataset}.encode_warm", megabytes / warm, "MB/s");
            context.Report($"{prefix}{dataset}.decode", megabytes / decode, "MB/s");
        }
    }

    private static int[][] EncodeAll(Tokenizer tokenizer, string[] texts)
    {
        var result = new int[texts.Length][];
        for (int i = 0; i < texts.Length; i++) result[i] = tokenizer.Encode(texts[i]);
        return result;
    }

    private static string[] LoadTexts(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        return document.RootElement.EnumerateArray()
            .Select(r => $"{Field(r, "instruction")}\n{Field(r, "input")}\n{Field(r, "output")}")
            .ToArray();
    }

    private static string Field(JsonElement record, string name) =>
        record.TryGetProperty(name, out var value) ? value.GetString() ?? "" : "";
}
