# make package: rend_<version>_amd64.deb with CPack's DEB generator. The binaries go to /usr/bin
# (the supervisor finds rend-worker and rend-l2 next to itself), the configuration to /etc/rend as
# a conffile, the units to /lib/systemd/system; Depends is computed from the binaries' shared
# libraries (dpkg-shlibdeps), plus memcached, which rend runs as its L1.
set(deb ${CMAKE_SOURCE_DIR}/deploy/debian)
set(units ${CMAKE_SOURCE_DIR}/deploy/systemd)

install(TARGETS rend rendctl rend-worker rend-l2 rend-loadgen RUNTIME DESTINATION bin)
install(FILES ${deb}/rend.json DESTINATION /etc/rend)

# rend@.service is made from rend.service: one source for both units.
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/package/rend@.service
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/package
  COMMAND ${units}/make-instance-unit.sh ${units}/rend.service > ${CMAKE_BINARY_DIR}/package/rend@.service
  DEPENDS ${units}/rend.service ${units}/make-instance-unit.sh)
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/package/changelog.gz
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/package
  COMMAND gzip -9n < ${deb}/changelog > ${CMAKE_BINARY_DIR}/package/changelog.gz
  DEPENDS ${deb}/changelog)
add_custom_target(package_files ALL DEPENDS ${CMAKE_BINARY_DIR}/package/rend@.service
                                            ${CMAKE_BINARY_DIR}/package/changelog.gz)
install(FILES ${units}/rend.service ${units}/rend.socket ${CMAKE_BINARY_DIR}/package/rend@.service
        DESTINATION /lib/systemd/system)
install(FILES ${deb}/README.Debian ${deb}/copyright ${CMAKE_BINARY_DIR}/package/changelog.gz
        DESTINATION share/doc/rend)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME rend)
set(CPACK_PACKAGE_VENDOR "the rend developers")
set(CPACK_PACKAGE_CONTACT "rend developers <rend@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# rend_<version>_amd64.deb.sha256 beside it: deploy/ansible checks the release against it.
set(CPACK_PACKAGE_CHECKSUM SHA256)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS memcached)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "two-tier memcached: RAM and SSD behind one memcached protocol")
# The synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the long description under it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "rend speaks memcached's text and binary protocols and keeps values in two
tiers: a memcached it supervises (RAM) and rend-l2, its RocksDB cache service
(SSD), so a host caches more than its RAM holds with memcached's behaviour.
A supervisor runs worker processes on shared ports, restarts what dies,
reloads without dropping connections and exports Prometheus metrics.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${deb}/postinst ${deb}/prerm ${deb}/postrm ${deb}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
