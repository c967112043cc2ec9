using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SharpTune.Tests.Data.Building;

/// <summary>
/// A teacher on loopback (Kestrel) speaking OpenAI's chat/completions, answering deterministically from the prompt
/// `data build`'s built-in prompts send: questions ask about each sentence of the passage (its first words quoted),
/// answers repeat the passage's sentence that starts with the quoted words (or the not-answerable marker when the
/// passage holds "XYZZY"; "?? ..." when it holds "GARBLE"; no questions when it holds "NOQUESTIONS"), paraphrases reword the question, self-instruct rounds propose tasks from a fixed pool not
/// already shown plus a near copy of the first shown, and any other prompt (a self-instruct instruction) gets a reply
/// naming it. Faults can be scripted per request number (1-based, counting every request): 429 with Retry-After,
/// 500, or a connection dropped without a reply. Every request and every successful reply is counted per prompt.
/// </summary>
public sealed partial class ScriptedTeacher : IAsyncDisposable
{
    public enum Fault { TooManyRequests, ServerError, DropConnection }

    public static readonly string[] TaskPool =
    [
        "Suggest three names for a bakery that sells only bread.",
        "Convert 25 degrees Celsius into Fahrenheit and show the steps.",
        "List four reasons why people keep houseplants indoors.",
        "Summarize the story of Romeo and Juliet in two lines.",
        "Translate the phrase good morning into Spanish and French.",
        "Write a haiku about autumn rain on a quiet street.",
    ];

    private readonly WebApplication app;
    private int requestNumber;

    public ScriptedTeacher()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        app = builder.Build();
        app.MapPost("/v1/chat/completions", Serve);
        app.StartAsync().GetAwaiter().GetResult();
        BaseUrl = app.Urls.Single() + "/v1";
    }

    public string BaseUrl { get; }

    /// <summary>Faults by request number.</summary>
    public ConcurrentDictionary<int, Fault> Faults { get; } = new();

    /// <summary>When set, requests without "Authorization: Bearer KEY" get OpenAI's 401.</summary>
    public string? RequiredKey { get; set; }

    /// <summary>Delay before each reply, so a run can be interrupted midway.</summary>
    public TimeSpan ReplyDelay { get; set; }

    public int Requests => requestNumber;

    /// <summary>Replies sent per prompt (not those a client abandoned before its reply).</summary>
    public ConcurrentDictionary<string, int> Replies { get; } = new(StringComparer.Ordinal);

    /// <summary>The request bodies received, in order, as sent.</summary>
    public ConcurrentQueue<JsonElement> Bodies { get; } = new();

    private async Task Serve(HttpContext context)
    {
        int number = Interlocked.Increment(ref requestNumber);
        using var document = await JsonDocument.ParseAsync(context.Request.Body);
        Bodies.Enqueue(document.RootElement.Clone());
        if (RequiredKey is not null && context.Request.Headers.Authorization != $"Bearer {RequiredKey}")
        {
            context.Response.StatusCode = 401;
            await context.Response.WriteAsJsonAsync(new { error = new { message = "Incorrect API key provided", type = "invalid_request_error" } });
            return;
        }
        if (Faults.TryGetValue(number, out var fault))
        {
            switch (fault)
            {
                case Fault.TooManyRequests:
                    context.Response.StatusCode = 429;
                    context.Response.Headers.RetryAfter = "1";
                    await context.Response.WriteAsJsonAsync(new { error = new { message = "Rate limit reached" } });
                    return;
                case Fault.ServerError:
                    context.Response.StatusCode = 500;
                    await context.Response.WriteAsJsonAsync(new { error = new { message = "The server had an error" } });
                    return;
                case Fault.DropConnection:
                    context.Abort();
                    return;
            }
        }
        string prompt = document.RootElement.GetProperty("messages")[0].GetProperty("content").GetString()!;
        if (ReplyDelay > TimeSpan.Zero)
        {
            // A client that gave up during the delay never gets this reply: it does not count.
            try { await Task.Delay(ReplyDelay, context.RequestAborted); }
            catch (OperationCanceledException) { return; }
        }
        string reply = Reply(prompt);
        Replies.AddOrUpdate(prompt, 1, (_, n) => n + 1);
        await context.Response.WriteAsJsonAsync(new
        {
            id = $"chatcmpl-{number}",
            @object = "chat.completion",
            model = document.RootElement.GetProperty("model").GetString(),
            choices = new[] { new { index = 0, message = new { role = "assistant", content = reply }, finish_reason = "stop" } },
        });
    }

    /// <summary>The reply to a prompt of the built-in English prompts.</summary>
    public static string Reply(string prompt)
    {
        if (prompt.Contains("different questions that a reader", StringComparison.Ordinal))
        {
            if (prompt.Contains("NOQUESTIONS", StringComparison.Ordinal)) return "";
            int n = int.Parse(Regex.Match(prompt, @"Write (\d+) different").Groups[1].Value);
            var questions = Sentences(Passage(prompt)).Take(n).Select((s, i) => $"{i + 1}. What does the text say about \"{Opening(s)}\"?");
            return "Here are the questions:\n" + string.Join("\n", questions);
        }
        if (prompt.StartsWith("Answer the question using only the passage", StringComparison.Ordinal))
        {
            string passage = Passage(prompt);
            if (passage.Contains("XYZZY", StringComparison.Ordinal)) return "NOT IN PASSAGE.";
            if (passage.Contains("GARBLE", StringComparison.Ordinal)) return "?? ...";
            string opening = Regex.Match(prompt, "Question: What does the text say about \"(.*)\"\\?$").Groups[1].Value;
            return "The text says: " + Sentences(passage).First(s => Opening(s) == opening);
        }
        if (prompt.StartsWith("Rewrite the question below in", StringComparison.Ordinal))
        {
            int n = int.Parse(Regex.Match(prompt, @"in (\d+) different ways").Groups[1].Value);
            string question = prompt[(prompt.LastIndexOf("Question: ", StringComparison.Ordinal) + "Question: ".Length)..];
            string[] frames = ["Tell me, {0}", "I would like to know: {0}", "Could you explain this? {0}", "Quick question. {0}"];
            return string.Join("\n", frames.Take(n).Select((f, i) => $"{i + 1}. {string.Format(f, question)}"));
        }
        if (prompt.StartsWith("Come up with a series of tasks:", StringComparison.Ordinal))
        {
            int n = int.Parse(Regex.Match(prompt, @"Continue the list with (\d+) new").Groups[1].Value);
            var shown = Regex.Matches(prompt, @"^\d+\. (.+)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
            var proposed = TaskPool.Where(t => !shown.Contains(t)).Take(n).Prepend("Please " + shown[0].TrimEnd('.') + " now.");
            return string.Join("\n", proposed.Select((t, i) => $"{shown.Count + 1 + i}. {t}"));
        }
        return $"A careful response to the task \"{prompt}\", written out in full.";
    }

    private static string Passage(string prompt)
    {
        int start = prompt.IndexOf("\"\"\"\n", StringComparison.Ordinal) + 4;
        return prompt[start..prompt.IndexOf("\n\"\"\"", start, StringComparison.Ordinal)];
    }

    private static IEnumerable<string> Sentences(string passage) =>
        Regex.Split(passage, @"(?<=[.!?])\s+|\n+").Select(s => s.Trim()).Where(s => s.Length > 0 && !s.StartsWith('#'));

    private static string Opening(string sentence) => string.Join(' ', sentence.Split(' ').Take(4));

    public async ValueTask DisposeAsync() => await app.DisposeAsync();
}
