#!/usr/bin/env bash
# bench/gpu-kit.sh: the build dependencies the device machine's image lacks, carried in
# one git-ignored folder (.gpu/) so that bench/gpu-run.sh and bench/gpu-e2e.sh build
# there with PCRE2, serve (libmicrohttpd, cJSON) and Vulkan (loader, headers, glslc).
# The image has nvcc, CMake and ninja but no package registry (bench/README-gpu.md).
#
#   here:   bash bench/gpu-kit.sh pack         # copies Debian's files into .gpu/ (~8 MB)
#   device: carry [".gpu"], then  . bench/gpu-kit.sh env
# The shared libraries keep their sonames; LD_LIBRARY_PATH puts them first, so only
# programs that load them (hearth, glslc, pkgconf) see them.
kit=${GPU_KIT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.gpu}
case "${1:-env}" in
pack)
    set -e
    rm -rf "$kit"; mkdir -p "$kit/bin" "$kit/lib/pkgconfig" "$kit/include"
    lib=/usr/lib/x86_64-linux-gnu
    cp /usr/bin/pkgconf "$kit/bin/pkgconf"; ln -s pkgconf "$kit/bin/pkg-config"
    cp "$(command -v glslc)" "$kit/bin/glslc"
    for so in libpkgconf.so.3 libpcre2-8.so.0 libmicrohttpd.so.12 libcjson.so.1 libvulkan.so.1 \
              libshaderc.so.1 libgnutls.so.30 libp11-kit.so.0 libidn2.so.0 libunistring.so.2 \
              libtasn1.so.6 libnettle.so.8 libhogweed.so.6 libgmp.so.10 libffi.so.8; do
        cp -L "$lib/$so" "$kit/lib/$so"
        ln -s "$so" "$kit/lib/${so%%.so.*}.so"
    done
    cp -r /usr/include/pcre2.h /usr/include/microhttpd.h /usr/include/cjson /usr/include/vulkan \
          /usr/include/vk_video "$kit/include/"
    rm -f "$kit"/include/vulkan/*.hpp   # C++ bindings: hearth is C
    for pc in libpcre2-8 libmicrohttpd libcjson vulkan; do
        # prefix=/usr -> the kit; libdir/includedir are given relative to it in the rewrite
        sed -e 's|^prefix=.*|prefix=${pcfiledir}/../..|' \
            -e 's|^libdir=.*|libdir=${prefix}/lib|' -e 's|^includedir=.*|includedir=${prefix}/include|' \
            -e 's|^exec_prefix=.*|exec_prefix=${prefix}|' \
            "$lib/pkgconfig/$pc.pc" >"$kit/lib/pkgconfig/$pc.pc"
    done
    mkdir -p "$(git rev-parse --git-common-dir)/info"
    grep -qx '/.gpu/' "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null ||
        echo '/.gpu/' >>"$(git rev-parse --git-common-dir)/info/exclude"
    du -sh "$kit"
    ;;
env)
    if [ -d "$kit/bin" ]; then
        export PATH="$kit/bin:$PATH" LD_LIBRARY_PATH="$kit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export PKG_CONFIG_PATH="$kit/lib/pkgconfig" VULKAN_SDK="$kit" CMAKE_PREFIX_PATH="$kit"
        # the NVIDIA driver's Vulkan ICD lives under its read-only mount on these images
        for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
                 /etc/vulkan/icd.d/nvidia_icd.json; do
            [ -f "$f" ] && { export VK_DRIVER_FILES="$f"; break; }
        done
        echo "gpu-kit: $kit (VK_DRIVER_FILES=${VK_DRIVER_FILES:-none})"
    else
        echo "gpu-kit: no $kit; building with the image's own packages"
    fi
    ;;
esac
