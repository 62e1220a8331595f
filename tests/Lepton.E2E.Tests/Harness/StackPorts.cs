using System.Globalization;
using Lepton.Cli.LocalStack;

namespace Lepton.E2E.Tests.Harness;

/// <summary>
/// The ports of one test stack, chosen free below the kernel's ephemeral range (32768+), so no
/// outgoing connection takes one between the choice and a restart on the same ports, and never
/// handed out twice in this process. Worker <c>i</c> listens on <c>WorkerBase + 10·i</c> (gRPC one
/// above), as <c>lepton dev</c> lays them out.
/// </summary>
public sealed record StackPorts(int Api, int WorkerBase, int Blob, int Queue, int Table, int Durable, int Workers)
{
    private const int Low = 20_000;
    private const int High = 32_000;
    private static readonly HashSet<int> Taken = [];
    private static readonly Lock Gate = new();

    public int WorkerHttp(int index) => WorkerBase + (10 * index);

    public int WorkerGrpc(int index) => WorkerBase + (10 * index) + 1;

    public string ApiUrl => $"http://127.0.0.1:{Api}";

    public string WorkerUrl(int index) => $"http://127.0.0.1:{WorkerHttp(index)}";

    /// <summary>Every port the stack binds (its API, durable backend, Azurite and each worker's two).</summary>
    public IReadOnlyList<int> All =>
        [Api, Durable, Blob, Queue, Table, .. Enumerable.Range(0, Workers).SelectMany(i => new[] { WorkerHttp(i), WorkerGrpc(i) })];

    /// <summary>The <c>lepton dev</c> options that put a stack on these ports.</summary>
    public IReadOnlyList<string> Arguments =>
    [
        "--api-port", Text(Api), "--worker-port", Text(WorkerBase), "--blob-port", Text(Blob),
        "--queue-port", Text(Queue), "--table-port", Text(Table), "--durable-port", Text(Durable),
        "--workers", Text(Workers),
    ];

    public static StackPorts Allocate(int workers)
    {
        lock (Gate)
        {
            var workerBase = Pick(p => Enumerable.Range(0, Math.Max(workers, 1)).All(i => Usable(p + (10 * i)) && Usable(p + (10 * i) + 1)));
            Reserve(Enumerable.Range(0, Math.Max(workers, 1)).SelectMany(i => new[] { workerBase + (10 * i), workerBase + (10 * i) + 1 }));
            int One()
            {
                var port = Pick(Usable);
                Reserve([port]);
                return port;
            }
            return new StackPorts(One(), workerBase, One(), One(), One(), One(), workers);
        }
    }

    private static int Pick(Func<int, bool> fits)
    {
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var port = Random.Shared.Next(Low, High - 40);
            if (fits(port))
            {
                return port;
            }
        }
        throw new InvalidOperationException($"no free ports in {Low}..{High}");
    }

    private static bool Usable(int port) => !Taken.Contains(port) && DevSettings.IsFree(port);

    private static void Reserve(IEnumerable<int> ports)
    {
        foreach (var port in ports)
        {
            Taken.Add(port);
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
