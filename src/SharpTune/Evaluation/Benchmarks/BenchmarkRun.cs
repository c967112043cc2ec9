using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training.Model;

namespace SharpTune.Evaluation.Benchmarks;

/// <summary>How a benchmark is run: LLaMA-Factory's evaluation arguments.</summary>
/// <param name="NShot">Few-shot examples before each question (n_shot), drawn from the train split.</param>
/// <param name="Lang">The evaluation template (lang): en or zh.</param>
/// <param name="BatchSize">Questions scored together (batch_size).</param>
/// <param name="Seed">Seeds the draw of few-shot examples (seed).</param>
public sealed record BenchmarkSettings(int NShot = 5, string Lang = "en", int BatchSize = 4, int Seed = 42);

/// <summary>
/// LLaMA-Factory's <c>Evaluator</c>: each question of the split, after n_shot examples, goes through the chat
/// template as one turn (<c>encode_oneturn</c>: everything before the answer is the prompt); the model reads the
/// prompts in right-padded batches, and the predicted letter is the one among A–D whose token has the largest logit
/// at the last prompt position (the first one on a tie, as torch.argmax). The few-shot examples of each question are
/// the first n_shot of a seeded shuffle of the train split (LLaMA-Factory shuffles with numpy's global generator, so
/// it draws other examples).
/// </summary>
public static class BenchmarkRun
{
    // encode_oneturn cuts nothing; a budget no prompt reaches keeps the processor from cutting either.
    private const int NoCutoff = 1 << 30;

    /// <param name="progress">Receives a line per subject.</param>
    /// <param name="cancellation">Checked before each batch.</param>
    public static BenchmarkResult Run(DecoderModel model, Tokenizer tokenizer, ChatTemplate template, BenchmarkTask task,
        BenchmarkSettings settings, Action<string> progress, CancellationToken cancellation = default)
    {
        if (settings.NShot < 0) throw new ArgumentException($"n_shot must be 0 or more, got {settings.NShot}");
        if (settings.BatchSize <= 0) throw new ArgumentException($"batch_size must be positive, got {settings.BatchSize}");
        var prompt = BenchmarkPrompt.ForLanguage(settings.Lang);
        var processor = new SupervisedProcessor(tokenizer, template, NoCutoff, trainOnPrompt: false, maskHistory: false);
        int[] choiceIds = new[] { "A", "B", "C", "D" }.Select(letter => tokenizer.Encode(letter)[^1]).ToArray();
        var random = new SeededRandom(unchecked((ulong)settings.Seed));
        var result = new BenchmarkResult();

        for (int s = 0; s < task.Subjects.Count; s++)
        {
            var subject = task.Subjects[s];
            var questions = task.Questions(subject, task.Split);
            IReadOnlyList<BenchmarkQuestion> support = settings.NShot > 0 ? task.Questions(subject, "train") : [];
            var prompts = new List<int[]>(questions.Count);
            foreach (var question in questions)
            {
                var order = Enumerable.Range(0, support.Count).ToArray();
                random.Shuffle(order);
                var shots = order.Take(Math.Min(settings.NShot, support.Count)).Select(i => support[i]);
                var messages = prompt.Messages(question, shots, subject.DisplayName);
                prompts.Add(processor.EncodeForGeneration(new AlignedExample(messages, null, null)).PromptIds);
            }

            var predictions = new List<string>(prompts.Count);
            for (int start = 0; start < prompts.Count; start += settings.BatchSize)
            {
                cancellation.ThrowIfCancellationRequested();
                predictions.AddRange(PredictLetters(model, prompts.GetRange(start, Math.Min(settings.BatchSize, prompts.Count - start)), choiceIds));
            }
            var correct = predictions.Select((p, i) => p == questions[i].Answer).ToList();
            result.Add(subject, predictions, correct);
            progress($"[{s + 1}/{task.Subjects.Count}] {subject.Name} ({subject.Category}): {correct.Count(c => c)}/{correct.Count} correct");
        }
        return result;
    }

    /// <summary>One right-padded batch: the letter whose token scores highest after each prompt.</summary>
    private static IEnumerable<string> PredictLetters(DecoderModel model, List<int[]> batch, int[] choiceIds)
    {
        int b = batch.Count, t = batch.Max(p => p.Length), h = model.Config.HiddenSize;
        var ids = new int[b * t];
        var positions = new int[b * t];
        var mask = new byte[b * t];
        for (int r = 0; r < b; r++)
            for (int i = 0; i < t; i++)
            {
                positions[r * t + i] = i;
                if (i >= batch[r].Length) continue;
                ids[r * t + i] = batch[r][i];
                mask[r * t + i] = 1;
            }
        var backend = model.Backend;
        var hidden = backend.Allocate(b * t, h);
        model.Forward(ids, positions, mask, b, t, model.CreateCache(b, t), hidden);
        var last = backend.Allocate(b, h);
        for (int r = 0; r < b; r++) backend.CopyRows(hidden, r * t + batch[r].Length - 1, last, r, 1);
        int vocab = model.Config.VocabSize;
        var logits = backend.Allocate(b, vocab);
        model.Logits(last, b, logits);
        var row = new float[vocab];
        for (int r = 0; r < b; r++)
        {
            backend.CopyToHost(logits, (long)r * vocab, row);
            int best = 0;
            for (int c = 1; c < choiceIds.Length; c++)
                if (row[choiceIds[c]] > row[choiceIds[best]]) best = c;
            yield return ((char)('A' + best)).ToString();
        }
    }
}
