using Gateway.Tests.Relay;
using Gateway.Handshake;
using Gateway.Relay;
using Microsoft.Extensions.Primitives;

namespace Gateway.Tests.Handshake;

public sealed class WebSocketExtensionsTests
{
    public static TheoryData<string[], byte> Headers() => new()
    {
        { [], 0 },
        { [""], 0 },
        { ["permessage-deflate"], WebSocketFrame.Rsv1 },
        { ["PerMessage-Deflate"], WebSocketFrame.Rsv1 }, // tokens are case-insensitive
        { ["permessage-deflate; client_max_window_bits=10; server_no_context_takeover"], WebSocketFrame.Rsv1 },
        { [" permessage-deflate ;client_no_context_takeover"], WebSocketFrame.Rsv1 },
        { ["x-custom; a=1, permessage-deflate"], WebSocketFrame.Rsv1 }, // a later extension in a comma-separated list
        { ["x-custom", "permessage-deflate; server_max_window_bits=12"], WebSocketFrame.Rsv1 }, // a later header value
        { ["x-webkit-deflate-frame"], 0 },
        { ["permessage-deflate-v2"], 0 },
        { ["x-custom; permessage-deflate"], 0 }, // a parameter of that name is not the extension
        { ["x-custom; p=\"a, permessage-deflate\""], 0 }, // nor is a quoted parameter value
        { ["x-custom; p=\"a\\\", permessage-deflate\""], 0 }, // with an escaped quote inside it
        { ["x-custom; p=\"a\", permessage-deflate"], WebSocketFrame.Rsv1 }, // after the quoted value ends, it is
    };

    [Theory]
    [MemberData(nameof(Headers))]
    public void The_agreed_extensions_decide_the_allowed_RSV_bits(string[] values, byte expected)
    {
        Assert.Equal(expected, WebSocketExtensions.AllowedReservedBits(new StringValues(values)));
    }

    [Fact]
    public void No_header_allows_no_bits()
    {
        Assert.Equal(0, WebSocketExtensions.AllowedReservedBits(StringValues.Empty));
        Assert.Equal(0, WebSocketExtensions.AllowedReservedBits(new StringValues((string?)null)));
    }
}
