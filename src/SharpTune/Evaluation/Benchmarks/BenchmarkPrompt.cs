using SharpTune.Templates;

namespace SharpTune.Evaluation.Benchmarks;

/// <summary>
/// LLaMA-Factory's evaluation templates (<c>eval/template.py</c>, en and zh): each question becomes
/// "question\nA. …\nB. …\nAnswer:" with its answer letter as the reply; the few-shot examples come first as earlier
/// turns, and the first message starts with the subject's instruction.
/// </summary>
public sealed class BenchmarkPrompt
{
    private readonly string system;
    private readonly string answer;

    private BenchmarkPrompt(string system, string answer)
    {
        this.system = system;
        this.answer = answer;
    }

    /// <exception cref="ArgumentException">A language other than en or zh.</exception>
    public static BenchmarkPrompt ForLanguage(string lang) => lang switch
    {
        "en" => new("The following are multiple choice questions (with answers) about {0}.\n\n", "\nAnswer:"),
        "zh" => new("以下是中国关于{0}考试的单项选择题，请选出其中的正确答案。\n\n", "\n答案："),
        _ => throw new ArgumentException($"lang: '{lang}' is not an evaluation language (en or zh)"),
    };

    /// <summary>The conversation for <paramref name="target"/>: the support set's questions and answers, then the target and its answer.</summary>
    public List<ChatMessage> Messages(BenchmarkQuestion target, IEnumerable<BenchmarkQuestion> supportSet, string subjectName)
    {
        var messages = new List<ChatMessage>();
        foreach (var example in supportSet.Append(target))
        {
            messages.Add(new ChatMessage(ChatRole.User, Question(example)));
            messages.Add(new ChatMessage(ChatRole.Assistant, example.Answer));
        }
        messages[0] = messages[0] with { Content = string.Format(system, subjectName) + messages[0].Content };
        return messages;
    }

    private string Question(BenchmarkQuestion q) =>
        q.Question + string.Concat(q.Choices.Select(c => $"\n{c.Letter}. {c.Text}")) + answer;
}
