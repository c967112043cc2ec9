using System.Text;
using Microsoft.AspNetCore.Http;
using SharpTune.FineTuning.Memory;
using SharpTune.Training.Trainer;

namespace SharpTune.Board.Runs;

/// <summary>
/// A run pushed to the page as server-sent events while it runs, and replayed when a page (re)attaches:
/// <c>state</c> (the run's summary, at start and at each change), <c>log</c> (each trainer_log.jsonl line, from the
/// first logged step), <c>output</c> (lines of the run's stdout/stderr: the last 40 at first, then each new one),
/// <c>memory</c> (the run's peak resident memory, as it grows), <c>reset</c> (the log was rewritten, as a resumed run does) and <c>end</c> once the run is over and everything
/// is sent. Files are read incrementally from remembered offsets, woken by a FileSystemWatcher on the run folder
/// with a short poll as fallback, so a new line reaches the page in well under a second.
/// </summary>
public sealed class RunEventStream(BoardServer board, string dir)
{
    private const int InitialOutputLines = 40;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    public async Task WriteAsync(HttpContext ctx)
    {
        var token = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, board.Stopping).Token;
        ctx.Response.ContentType = "text/event-stream; charset=utf-8";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        await ctx.Response.Body.FlushAsync(token);

        using var wake = new SemaphoreSlim(0);
        using var watcher = new FileSystemWatcher(dir) { NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size };
        FileSystemEventHandler changed = (_, _) => Signal(wake);
        watcher.Changed += changed;
        watcher.Created += changed;
        watcher.Renamed += (_, _) => Signal(wake);
        watcher.EnableRaisingEvents = true;

        var log = new LineTail(Path.Combine(dir, TrainerLogFile.FileName));
        var output = new LineTail(Path.Combine(dir, RunRecord.LogFileName));
        bool firstOutput = true;
        string? lastState = null;
        long? lastPeak = null;
        while (!token.IsCancellationRequested)
        {
            board.Runs.CloseIfOrphaned(dir);
            var summary = RunFolders.Describe(board.Roots, dir);
            string state = summary.ToJsonString(BoardJson.Options);
            bool over = summary["state"]?.GetValue<string>() is "finished" or "failed" or "aborted";

            var (logLines, logReset) = log.ReadNew();
            if (logReset) await SendAsync(ctx, "reset", "{}", token);
            foreach (string line in logLines) await SendAsync(ctx, "log", line, token);
            var (outputLines, _) = output.ReadNew();
            foreach (string line in firstOutput ? outputLines.TakeLast(InitialOutputLines) : outputLines)
                await SendAsync(ctx, "output", System.Text.Json.JsonSerializer.Serialize(line, BoardJson.Options), token);
            firstOutput = false;
            if (state != lastState)
            {
                await SendAsync(ctx, "state", state, token);
                lastState = state;
            }
            if (summary["state"]?.GetValue<string>() == "running" && summary["pid"]?.GetValue<int>() is int pid
                && SystemMemory.PeakResidentBytes(pid) is long peak && peak != lastPeak)
            {
                await SendAsync(ctx, "memory", $"{{\"peak_bytes\":{peak}}}", token);
                lastPeak = peak;
            }
            if (over && logLines.Count == 0 && outputLines.Count == 0)
            {
                await SendAsync(ctx, "end", "{}", token);
                return;
            }
            try
            {
                await wake.WaitAsync(Poll, token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static void Signal(SemaphoreSlim wake)
    {
        if (wake.CurrentCount == 0) wake.Release();
    }

    private static async Task SendAsync(HttpContext ctx, string name, string data, CancellationToken token)
    {
        await ctx.Response.WriteAsync($"event: {name}\ndata: {data}\n\n", token);
        await ctx.Response.Body.FlushAsync(token);
    }

    /// <summary>The complete lines appended to a file since the last read (a partial last line waits for its newline).</summary>
    private sealed class LineTail(string path)
    {
        private long _offset;

        public (List<string> Lines, bool Reset) ReadNew()
        {
            var lines = new List<string>();
            if (!File.Exists(path)) return (lines, false);
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            bool reset = stream.Length < _offset;
            if (reset) _offset = 0;
            if (stream.Length == _offset) return (lines, reset);
            stream.Seek(_offset, SeekOrigin.Begin);
            var bytes = new byte[stream.Length - _offset];
            stream.ReadExactly(bytes);
            int end = Array.LastIndexOf(bytes, (byte)'\n');
            if (end < 0) return (lines, reset);
            _offset += end + 1;
            foreach (string line in Encoding.UTF8.GetString(bytes, 0, end).Split('\n'))
                if (line.TrimEnd('\r').Length > 0) lines.Add(line.TrimEnd('\r'));
            return (lines, reset);
        }
    }
}
