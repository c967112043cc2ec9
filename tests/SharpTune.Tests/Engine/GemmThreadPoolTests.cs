using SharpTune.Engine;

namespace SharpTune.Tests.Engine;

/// <summary>The fork-join pool's contract: every task exactly once, on spinning and on sleeping workers alike.</summary>
public sealed class GemmThreadPoolTests
{
    [Fact]
    public void ManyBackToBackCallsRunEveryTaskExactlyOnce()
    {
        var pool = new GemmThreadPool(3);
        for (int call = 0; call < 5000; call++)
        {
            int tasks = 1 + call % 37;
            var runs = new int[tasks];
            pool.For(tasks, i => Interlocked.Increment(ref runs[i]));
            Assert.All(runs, r => Assert.Equal(1, r));
        }
    }

    [Fact]
    public void CallsAfterTheWorkersHaveGoneToSleepStillComplete()
    {
        var pool = new GemmThreadPool(2);
        var threads = new HashSet<int>();
        for (int call = 0; call < 5; call++)
        {
            // Longer than the workers' spin, so each call must wake a sleeping worker.
            Thread.Sleep(20);
            var runs = new int[64];
            pool.For(64, i =>
            {
                Thread.SpinWait(20_000);
                Interlocked.Increment(ref runs[i]);
                lock (threads) threads.Add(Environment.CurrentManagedThreadId);
            });
            Assert.All(runs, r => Assert.Equal(1, r));
        }
        Assert.Equal(2, threads.Count);
    }

    [Fact]
    public void ATaskExceptionReachesTheCallerAndThePoolKeepsWorking()
    {
        var pool = new GemmThreadPool(2);
        var runs = new int[16];

        var e = Assert.Throws<InvalidOperationException>(() => pool.For(16, i =>
        {
            Interlocked.Increment(ref runs[i]);
            if (i == 5) throw new InvalidOperationException("task 5 failed");
        }));
        int total = 0;
        pool.For(8, _ => Interlocked.Increment(ref total));

        Assert.Equal("task 5 failed", e.Message);
        Assert.All(runs, r => Assert.Equal(1, r));
        Assert.Equal(8, total);
    }

    [Fact]
    public void NestedAndConcurrentCallsRunSeriallyAndComplete()
    {
        var pool = new GemmThreadPool(2);
        var inner = new int[8 * 8];
        pool.For(8, outer => pool.For(8, i => Interlocked.Increment(ref inner[outer * 8 + i])));

        var totals = new int[6];
        Parallel.For(0, totals.Length, caller =>
        {
            for (int call = 0; call < 200; call++)
                pool.For(10, _ => Interlocked.Increment(ref totals[caller]));
        });

        Assert.All(inner, r => Assert.Equal(1, r));
        Assert.All(totals, t => Assert.Equal(2000, t));
    }

    [Theory]
    [InlineData(0, 8)]
    [InlineData(7, 8)]
    [InlineData(100, 8)]
    [InlineData(1000, 1)]
    public void ForRangesCoversEveryIndexOnceInContiguousPiecesOfTheMinimumSize(int count, int minimumPerTask)
    {
        var pool = new GemmThreadPool(3);
        var runs = new int[count];
        var pieces = new List<(int Start, int End)>();
        pool.ForRanges(count, minimumPerTask, (start, end) =>
        {
            lock (pieces) pieces.Add((start, end));
            for (int i = start; i < end; i++) Interlocked.Increment(ref runs[i]);
        });
        Assert.All(runs, r => Assert.Equal(1, r));
        Assert.True(pieces.Count <= 4 * pool.Threads, $"{pieces.Count} pieces for {pool.Threads} threads");
        if (pieces.Count > 1) Assert.All(pieces, p => Assert.True(p.End - p.Start >= minimumPerTask, $"piece [{p.Start}, {p.End})"));
        if (count == 0) Assert.Empty(pieces);
    }
}
