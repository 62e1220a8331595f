using System.Net.Sockets;
using System.Text;

namespace Lepton.GpuWorker.Tests.Harness;

/// <summary>Sends exact request bytes over a plain socket and parses the HTTP/1.1 answer, as a client library would.</summary>
public static class RawHttp
{
    public sealed record Answer(int Status, Dictionary<string, string> Headers, byte[] Body)
    {
        public string Text => Encoding.UTF8.GetString(Body);
    }

    /// <summary>The request head geventhttpclient (tritonclient's HTTP stack) writes: its User-Agent, caller headers, Host, then Content-Length when there is a body.</summary>
    public static byte[] GeventRequest(string method, string path, int port, byte[] body, params (string Name, string Value)[] headers)
    {
        var head = new StringBuilder();
        head.Append(method).Append(' ').Append(path).Append(" HTTP/1.1\r\n");
        head.Append("User-Agent: python/gevent-http-client-2.3.3\r\n");
        foreach (var (name, value) in headers)
        {
            head.Append(name).Append(": ").Append(value).Append("\r\n");
        }
        head.Append("Host: 127.0.0.1:").Append(port).Append("\r\n");
        if (body.Length > 0)
        {
            head.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        }
        head.Append("\r\n");
        return [.. Encoding.ASCII.GetBytes(head.ToString()), .. body];
    }

    public static async Task<Answer> SendAsync(int port, byte[] request, CancellationToken ct)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port, ct);
        var stream = client.GetStream();
        await stream.WriteAsync(request, ct);
        var received = new MemoryStream();
        var buffer = new byte[65536];
        int headEnd;
        while ((headEnd = IndexOf(received.GetBuffer().AsSpan(0, (int)received.Length), "\r\n\r\n"u8)) < 0)
        {
            var read = await stream.ReadAsync(buffer, ct);
            if (read == 0)
            {
                throw new IOException("the server closed the connection before answering");
            }
            received.Write(buffer, 0, read);
        }
        var head = Encoding.ASCII.GetString(received.GetBuffer(), 0, headEnd).Split("\r\n");
        var status = int.Parse(head[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = head.Skip(1).Select(h => h.Split(':', 2)).ToDictionary(h => h[0].Trim(), h => h[1].Trim(), StringComparer.OrdinalIgnoreCase);
        var length = int.Parse(headers["Content-Length"], System.Globalization.CultureInfo.InvariantCulture);
        while (received.Length < headEnd + 4 + length)
        {
            var read = await stream.ReadAsync(buffer, ct);
            if (read == 0)
            {
                throw new IOException("the server closed the connection mid-body");
            }
            received.Write(buffer, 0, read);
        }
        return new Answer(status, headers, received.GetBuffer().AsSpan(headEnd + 4, length).ToArray());
    }

    private static int IndexOf(ReadOnlySpan<byte> haystack, ReadOnlySpan<byte> needle) => haystack.IndexOf(needle);
}
