# Gateway: TLS-terminating WebSocket reverse proxy.
#   docker build -t gateway .
#   docker run -p 80:80 -p 443:443 \
#     -v $PWD/my-gateway.json:/etc/gateway/gateway.json:ro \
#     -v $PWD/certs:/etc/gateway/certs:ro \
#     -v gateway-keys:/var/lib/gateway/keys gateway

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# The repository's nuget.config names this machine's offline test-package folder; the image only needs nuget.org,
# the SDK's default source, so it is not copied.
COPY Directory.Build.props Directory.Build.targets ./
COPY src/Gateway/Gateway.csproj src/Gateway/
RUN dotnet restore src/Gateway/Gateway.csproj
COPY src/Gateway/ src/Gateway/
RUN dotnet publish src/Gateway/Gateway.csproj -c Release -o /app --no-restore

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
# The default configuration; mount your own over it (and certificates under /etc/gateway/certs).
COPY config/gateway.json /etc/gateway/gateway.json
# The data-protection key ring encrypts affinity cookies: mount a volume shared by every replica here.
RUN mkdir -p /var/lib/gateway/keys && chown app:app /var/lib/gateway/keys
# Workstation GC, as the project file sets (the reason is there): it gives back what a reconnect storm made it commit.
ENV GATEWAY_CONFIG=/etc/gateway/gateway.json \
    DOTNET_gcServer=0
# Non-root. Docker (20.10+) lets unprivileged users bind ports below 1024 inside a container
# (net.ipv4.ip_unprivileged_port_start=0); elsewhere set that sysctl or move the listeners to 8080/8443.
USER app
EXPOSE 80 443
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["dotnet", "/app/Gateway.dll", "--health-check", "http://127.0.0.1:9901/healthz"]
ENTRYPOINT ["dotnet", "/app/Gateway.dll"]
